//! Writers for hostile workbooks. A streaming zip writer: an entry is given as pieces of content,
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
pub(crate) struct Piece<'a> {
    pub bytes: &'a [u8],
    pub times: u64,
}

pub(crate) fn once(bytes: &[u8]) -> Piece<'_> {
    Piece { bytes, times: 1 }
}

pub(crate) fn repeat(bytes: &[u8], times: u64) -> Piece<'_> {
    Piece { bytes, times }
}

struct Central {
    name: String,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
}

pub(crate) struct ZipStream<W: Write> {
    out: W,
    written: u64,
    entries: Vec<Central>,
}

impl<W: Write> ZipStream<W> {
    pub(crate) fn new(out: W) -> Self {
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
    pub(crate) fn file(&mut self, name: &str, data: &[u8]) {
        self.entry(name, &[once(data)], None);
    }

    /// An entry made of repeated pieces; `claimed` is the uncompressed size the headers
    /// state instead of the true one.
    pub(crate) fn entry(&mut self, name: &str, pieces: &[Piece<'_>], claimed: Option<u64>) {
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
    pub(crate) fn finish(mut self) -> W {
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

/// A BIFF record: type, length, data.
pub(crate) fn biff(typ: u16, data: &[u8]) -> Vec<u8> {
    let mut r = typ.to_le_bytes().to_vec();
    r.extend_from_slice(&(data.len() as u16).to_le_bytes());
    r.extend_from_slice(data);
    r
}

/// An XLS file: a version-4 compound file (4 KiB sectors, so the 109 FAT sectors the
/// header lists cover 450 MB) whose only stream, `Workbook`, holds `globals` (records after
/// the BOF, before the EOF) and one sheet `Users` made of `sheet` records. The stream is
/// padded to 4 KiB so that it lives in regular sectors.
pub(crate) fn xls(globals: &[u8], sheet: &[u8]) -> Vec<u8> {
    const SECTOR: usize = 4096;
    const PER_FAT: usize = SECTOR / 4;
    let bof = biff(0x0809, &[0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0]);
    let mut bound = vec![0u8; 6];
    bound.extend_from_slice(&[5, 0]);
    bound.extend_from_slice(b"Users");
    let pos = (bof.len() + globals.len() + biff(0x0085, &bound).len() + 4) as u32;
    bound[..4].copy_from_slice(&pos.to_le_bytes());
    let mut stream = bof.clone();
    stream.extend_from_slice(globals);
    stream.extend(biff(0x0085, &bound));
    stream.extend(biff(0x000A, &[]));
    stream.extend(bof);
    stream.extend_from_slice(sheet);
    stream.extend(biff(0x000A, &[]));
    if stream.len() < 4096 {
        stream.resize(4096, 0);
    }
    let n = stream.len().div_ceil(SECTOR);
    // sectors: FAT sectors first, then the directory, then the stream
    let mut fat_sectors = 1;
    while fat_sectors * PER_FAT < fat_sectors + 1 + n {
        fat_sectors += 1;
    }
    assert!(
        fat_sectors <= 109,
        "the header's DIFAT holds 109 FAT sectors"
    );
    let dir = fat_sectors;
    let first = dir + 1;
    let mut fat = vec![0xFFFF_FFFFu32; fat_sectors * PER_FAT];
    for f in fat.iter_mut().take(fat_sectors) {
        *f = 0xFFFF_FFFD;
    }
    fat[dir] = 0xFFFF_FFFE;
    for i in 0..n {
        fat[first + i] = if i + 1 == n {
            0xFFFF_FFFE
        } else {
            (first + i + 1) as u32
        };
    }
    let mut h = vec![0u8; SECTOR];
    h[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    h[24..26].copy_from_slice(&0x3Eu16.to_le_bytes());
    h[26..28].copy_from_slice(&4u16.to_le_bytes());
    h[28..30].copy_from_slice(&0xFFFEu16.to_le_bytes());
    h[30..32].copy_from_slice(&12u16.to_le_bytes());
    h[32..34].copy_from_slice(&6u16.to_le_bytes());
    h[40..44].copy_from_slice(&1u32.to_le_bytes());
    h[44..48].copy_from_slice(&(fat_sectors as u32).to_le_bytes());
    h[48..52].copy_from_slice(&(dir as u32).to_le_bytes());
    h[56..60].copy_from_slice(&4096u32.to_le_bytes());
    h[60..64].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    h[68..72].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    for i in 0..109 {
        let v = if i < fat_sectors {
            i as u32
        } else {
            0xFFFF_FFFF
        };
        h[76 + i * 4..80 + i * 4].copy_from_slice(&v.to_le_bytes());
    }
    let mut out = h;
    for v in &fat {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut d = vec![0u8; SECTOR];
    for (k, (name, typ, start, len)) in [
        // calamine refuses a version-4 root whose mini stream starts nowhere, even
        // when there is no mini stream (no mini FAT): point it at sector 0
        ("Root Entry", 5u8, 0u32, 0u64),
        ("Workbook", 2, first as u32, stream.len() as u64),
    ]
    .iter()
    .enumerate()
    {
        let e = &mut d[k * 128..(k + 1) * 128];
        let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
        e[..utf16.len()].copy_from_slice(&utf16);
        e[64..66].copy_from_slice(&((utf16.len() + 2) as u16).to_le_bytes());
        e[66] = *typ;
        e[116..120].copy_from_slice(&start.to_le_bytes());
        e[120..128].copy_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(&d);
    stream.resize(n * SECTOR, 0);
    out.extend_from_slice(&stream);
    out
}

/// The parts every XLSX needs around one worksheet (and optionally shared strings).
pub(crate) fn xlsx(
    path: &Path,
    sheet: &[Piece<'_>],
    claimed: Option<u64>,
    sst: Option<&[Piece<'_>]>,
) {
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

pub(crate) const SHEET_OPEN: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>upn</t></is></c><c r="B1" t="inlineStr"><is><t>displayName</t></is></c></row>"#;
pub(crate) const SHEET_CLOSE: &[u8] = b"</sheetData></worksheet>";
pub(crate) const SST_OPEN: &[u8] =
    br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#;
pub(crate) const SST_CLOSE: &[u8] = b"</sst>";

#[test]
fn the_xls_writer_writes_what_calamine_reads() {
    use calamine::Reader;
    let mut sheet = Vec::new();
    for (row, col, v) in [(0u16, 0u16, 1.5f64), (2, 1, -3.0)] {
        let mut d = row.to_le_bytes().to_vec();
        d.extend_from_slice(&col.to_le_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&v.to_le_bytes());
        sheet.extend(biff(0x0203, &d));
    }
    // and a stream of 8 MB: more than one FAT sector's worth of chain
    sheet.extend(biff(0x1234, &vec![0u8; 8000]).repeat(1000));
    let bytes = xls(&[], &sheet);
    // our pre-pass walks it too (4 KiB sectors), and reads the same cells
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.xls");
    std::fs::write(&p, &bytes).unwrap();
    let opts = teamsync::sheet::ReadOptions::default();
    let read = teamsync::sheet::SheetReader::open(&p, &opts).unwrap();
    assert_eq!(read.header().unwrap().cells[0].display(), "1.5");
    let mut wb = calamine::Xls::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(wb.sheet_names(), vec!["Users".to_string()]);
    let range = wb.worksheet_range("Users").unwrap();
    assert_eq!(range.get_value((0, 0)), Some(&calamine::Data::Float(1.5)));
    assert_eq!(range.get_value((2, 1)), Some(&calamine::Data::Float(-3.0)));
}

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
    xlsx(&big, &[repeat(&vec![b' '; 1 << 20], 5 << 10)], None, None);
    assert!(std::fs::metadata(&big).unwrap().len() < 8 << 20);
    let mut z = zip::ZipArchive::new(std::fs::File::open(&big).unwrap()).unwrap();
    assert_eq!(
        z.by_name("xl/worksheets/sheet1.xml").unwrap().size(),
        5 << 30
    );
}
