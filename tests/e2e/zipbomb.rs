//! A streaming zip writer for hostile workbooks: an entry is given as pieces of content,
//! each repeated any number of times, and is written without ever being built. Each piece
//! is deflated once, on its own (a full flush makes its compressed bytes decode the same
//! wherever they stand), and those bytes are written as many times as the piece repeats;
//! the CRC is combined the same way. So a 3 GB worksheet of whitespace costs about 3 MB of
//! disk and a second to write. Entries over 4 GiB get ZIP64 fields; an entry may also
//! claim a size it does not have, as bombs do.

use flate2::{Compress, Compression, FlushCompress};
use std::io::Write;
use std::path::Path;

/// One piece of an entry: `bytes`, `times` times in a row.
pub struct Piece<'a> {
    pub bytes: &'a [u8],
    pub times: u64,
}

pub fn once(bytes: &[u8]) -> Piece<'_> {
    Piece { bytes, times: 1 }
}

pub fn repeat(bytes: &[u8], times: u64) -> Piece<'_> {
    Piece { bytes, times }
}

struct Central {
    name: String,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
}

pub struct ZipStream<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Central>,
}

impl<W: Write> ZipStream<W> {
    pub fn new(out: W) -> Self {
        ZipStream {
            out,
            written: 0,
            entries: Vec::new(),
        }
    }

    fn put(&mut self, b: &[u8]) {
        self.out.write_all(b).expect("write zip");
        self.written += b.len() as u64;
    }

    /// A small entry.
    pub fn file(&mut self, name: &str, data: &[u8]) {
        self.entry(name, &[once(data)], None);
    }

    /// An entry made of repeated pieces; `claimed` is the uncompressed size the headers
    /// state instead of the true one.
    pub fn entry(&mut self, name: &str, pieces: &[Piece<'_>], claimed: Option<u64>) {
        // Each piece deflated alone, ending on a full flush (byte-aligned, no references
        // back); then one empty final block. A short piece repeated is first tiled into a
        // unit of about 1 MiB, or every copy would cost a block of its own.
        let mut blocks: Vec<(Vec<u8>, u64)> = Vec::new();
        for p in pieces {
            let per_unit = ((1u64 << 20) / p.bytes.len().max(1) as u64).clamp(1, p.times.max(1));
            let (units, rest) = (p.times / per_unit, p.times % per_unit);
            if units > 0 {
                blocks.push((deflate_alone(&p.bytes.repeat(per_unit as usize)), units));
            }
            if rest > 0 {
                blocks.push((deflate_alone(&p.bytes.repeat(rest as usize)), 1));
            }
        }
        blocks.push((vec![0x03, 0x00], 1));
        let mut crc = crc32fast::Hasher::new();
        let mut size = 0u64;
        for p in pieces {
            let mut one = crc32fast::Hasher::new();
            one.update(p.bytes);
            crc.combine(&repeated(&one, p.times));
            size += p.bytes.len() as u64 * p.times;
        }
        let compressed: u64 = blocks.iter().map(|(b, t)| b.len() as u64 * t).sum();
        let size = claimed.unwrap_or(size);
        let crc = crc.finalize();
        let offset = self.written;
        let zip64 = size >= 0xFFFF_FFFF || compressed >= 0xFFFF_FFFF;
        let mut h = Vec::new();
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // flags
        h.extend_from_slice(&8u16.to_le_bytes()); // deflate
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
        h.extend_from_slice(&crc.to_le_bytes());
        let small = |v: u64| if zip64 { 0xFFFF_FFFF } else { v as u32 };
        h.extend_from_slice(&small(compressed).to_le_bytes());
        h.extend_from_slice(&small(size).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            h.extend_from_slice(&1u16.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&compressed.to_le_bytes());
        }
        self.put(&h);
        for (block, times) in &blocks {
            for _ in 0..*times {
                self.put(block);
            }
        }
        self.entries.push(Central {
            name: name.to_string(),
            crc,
            compressed,
            size,
            offset,
        });
    }

    /// Writes the central directory and returns the writer.
    pub fn finish(mut self) -> W {
        let start = self.written;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let zip64 = e.size >= 0xFFFF_FFFF || e.compressed >= 0xFFFF_FFFF;
            let mut h = Vec::new();
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            h.extend_from_slice(&45u16.to_le_bytes());
            h.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&8u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&0x21u16.to_le_bytes());
            h.extend_from_slice(&e.crc.to_le_bytes());
            let small = |v: u64| if zip64 { 0xFFFF_FFFF } else { v as u32 };
            h.extend_from_slice(&small(e.compressed).to_le_bytes());
            h.extend_from_slice(&small(e.size).to_le_bytes());
            h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&(if zip64 { 20u16 } else { 0 }).to_le_bytes());
            h.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
            h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            h.extend_from_slice(&(e.offset as u32).to_le_bytes());
            h.extend_from_slice(e.name.as_bytes());
            if zip64 {
                h.extend_from_slice(&1u16.to_le_bytes());
                h.extend_from_slice(&16u16.to_le_bytes());
                h.extend_from_slice(&e.size.to_le_bytes());
                h.extend_from_slice(&e.compressed.to_le_bytes());
            }
            self.put(&h);
        }
        let size = self.written - start;
        let mut end = Vec::new();
        end.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        end.extend_from_slice(&[0; 4]);
        end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        end.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        end.extend_from_slice(&(size as u32).to_le_bytes());
        end.extend_from_slice(&(start as u32).to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.put(&end);
        self.out
    }
}

/// The CRC state of `times` copies of what `one` hashed (by doubling: log2(times) steps).
fn repeated(one: &crc32fast::Hasher, mut times: u64) -> crc32fast::Hasher {
    let mut acc = crc32fast::Hasher::new();
    let mut base = one.clone();
    while times > 0 {
        if times & 1 == 1 {
            acc.combine(&base);
        }
        let b = base.clone();
        base.combine(&b);
        times >>= 1;
    }
    acc
}

/// Raw deflate of `data`, ending on a full flush so the bytes stand alone.
fn deflate_alone(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut input = data;
    loop {
        out.reserve(64 * 1024);
        let before_in = c.total_in();
        c.compress_vec(input, &mut out, FlushCompress::Full)
            .expect("deflate");
        input = &input[(c.total_in() - before_in) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// The parts every XLSX needs around one worksheet (and optionally shared strings).
pub fn xlsx(path: &Path, sheet: &[Piece<'_>], claimed: Option<u64>, sst: Option<&[Piece<'_>]>) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut z = ZipStream::new(file);
    z.file(
        "[Content_Types].xml",
        br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/></Types>"#,
    );
    z.file(
        "xl/workbook.xml",
        br#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
    );
    z.file(
        "xl/_rels/workbook.xml.rels",
        br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#,
    );
    if let Some(sst) = sst {
        z.entry("xl/sharedStrings.xml", sst, None);
    }
    z.entry("xl/worksheets/sheet1.xml", sheet, claimed);
    let mut w = z.finish();
    w.flush().expect("flush");
}

pub const SHEET_OPEN: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>upn</t></is></c><c r="B1" t="inlineStr"><is><t>displayName</t></is></c></row>"#;
pub const SHEET_CLOSE: &[u8] = b"</sheetData></worksheet>";
pub const SST_OPEN: &[u8] =
    br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#;
pub const SST_CLOSE: &[u8] = b"</sst>";

#[test]
fn what_it_writes_reads_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.xlsx");
    let row = b"<row><c t=\"inlineStr\"><is><t>a@contoso.com</t></is></c></row>";
    xlsx(
        &p,
        &[once(SHEET_OPEN), repeat(row, 1000), once(SHEET_CLOSE)],
        None,
        None,
    );
    let mut z = zip::ZipArchive::new(std::fs::File::open(&p).unwrap()).unwrap();
    let mut sheet = String::new();
    std::io::Read::read_to_string(
        &mut z.by_name("xl/worksheets/sheet1.xml").unwrap(),
        &mut sheet,
    )
    .unwrap(); // the zip crate checks the CRC at the end
    assert_eq!(
        sheet.len(),
        SHEET_OPEN.len() + 1000 * row.len() + SHEET_CLOSE.len()
    );
    assert!(sheet.ends_with("</row></sheetData></worksheet>"));
    // a 5 GiB entry is 5 MiB on disk and says so in ZIP64 fields
    let big = dir.path().join("big.xlsx");
    xlsx(&big, &[repeat(&[b' '; 1 << 20], 5 << 10)], None, None);
    assert!(std::fs::metadata(&big).unwrap().len() < 8 << 20);
    let mut z = zip::ZipArchive::new(std::fs::File::open(&big).unwrap()).unwrap();
    assert_eq!(
        z.by_name("xl/worksheets/sheet1.xml").unwrap().size(),
        5 << 30
    );
}
