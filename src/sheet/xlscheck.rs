//! The XLS half of the pre-pass (see `zipguard` for the zip-based formats).
//!
//! calamine's XLS reader trusts the file more than its zip-based readers do. Run on a
//! crafted file it grows its sector cache to whatever sector number a chain names
//! (terabytes: the allocation fails and the process aborts, which no `catch_unwind`
//! stops), reserves a `Vec` from sizes in the compound-file directory and from the
//! DIMENSIONS record (rows are 32-bit there), follows a cyclic sector chain forever, and
//! loads every sheet whole into a dense grid, with every formula turned into text (a
//! five-byte name token can become 255 characters) and every shared-string cell holding its
//! own copy of the string. So an XLS file is first walked here, read whole (it is small,
//! see below), the way calamine will walk it — header, DIFAT, FAT, directory, mini stream,
//! the `Workbook` stream, its BIFF records — and refused when it would:
//! - name a sector past the end of the file, loop in a chain, or size an allocation past
//!   the file (a crafted or damaged file);
//! - hold macros (`_VBA_PROJECT_CUR`: calamine would decompress and parse them);
//! - be bigger than [`XLS_MAX`] (8 MiB; calamine keeps about ten times the file in memory);
//! - declare or hold more than `max_rows` cells in all sheets, as cells or as the dense grid
//!   they span (formulas counted apart), or a DIMENSIONS record past that (1,000,000);
//! - hold more than `16 × max_rows` bytes of shared-string copies in its cells, or formulas
//!   whose text could exceed `32 × max_rows` bytes (16 MB, 32 MB).
//!
//! Excel's XLS sheets stop at 65,536 rows, so these caps refuse no sheet Excel 97-2003 could
//! make with ordinary content; larger or formula-heavy ones are told to save as XLSX.

use super::{Format, Limits, SheetError};
use std::io::Read;
use std::path::Path;

/// Largest XLS file read.
pub(super) const XLS_MAX: u64 = 8 * 1024 * 1024;

const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
const DIFSECT: u32 = 0xFFFF_FFFC;
const RESERVED: u32 = 0xFFFF_FFFA;

fn damaged(what: &str) -> SheetError {
    SheetError::Corrupt {
        format: Format::Xls,
        message: format!("{what}: a crafted or damaged file, refused before reading it"),
    }
}

fn too_big(what: String) -> SheetError {
    SheetError::TooBig(format!(
        "{what}; XLS workbooks are loaded whole, so the file is refused: save it as XLSX (or \
         CSV UTF-8), which is read as a stream"
    ))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u32s(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Checks an XLS file before calamine opens it.
pub(super) fn check(path: &Path, limits: &Limits) -> Result<(), SheetError> {
    let max = XLS_MAX.min(limits.max_file_bytes);
    let mut bytes = Vec::new();
    super::open_regular(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SheetError::Io(e.to_string()))?;
    if bytes.len() as u64 > max {
        return Err(too_big(format!("the file is larger than {max} bytes")));
    }
    match workbook_stream(&bytes)? {
        Some(stream) => Biff::new(limits).check(&stream),
        // calamine refuses the file by itself, before allocating anything from it
        None => Ok(()),
    }
}

// ------------------------------------------------------------------ compound file

/// A directory entry: (name, first sector, length).
struct Entry {
    name: String,
    start: u32,
    len: u64,
}

struct Sectors<'a> {
    /// The file after its header, as calamine caches it.
    data: &'a [u8],
    size: usize,
}

impl<'a> Sectors<'a> {
    fn get(&self, id: u32) -> Result<&'a [u8], SheetError> {
        let start = id as usize * self.size;
        self.data
            .get(start..start + self.size)
            .ok_or_else(|| damaged("a sector past the end of the file"))
    }

    /// The bytes of a chain: every sector in the file, the table naming each next one, no
    /// sector visited twice (a longer chain than there are sectors is a loop).
    fn chain(&self, mut id: u32, table: &[u32], len: Option<u64>) -> Result<Vec<u8>, SheetError> {
        if len.is_some_and(|l| l > self.data.len() as u64) {
            return Err(damaged("a stream longer than the file"));
        }
        let mut out = Vec::new();
        let mut steps = 0usize;
        while id != ENDOFCHAIN {
            out.extend_from_slice(self.get(id)?);
            steps += 1;
            if steps > self.data.len() / self.size.max(1) + 1 {
                return Err(damaged("a sector chain that loops"));
            }
            id = *table
                .get(id as usize)
                .ok_or_else(|| damaged("a sector chain that leaves the allocation table"))?;
        }
        if let Some(l) = len.filter(|l| *l > 0) {
            out.truncate(l as usize);
        }
        Ok(out)
    }
}

/// The `Workbook` (or BIFF5 `Book`) stream as calamine will read it, after checking every
/// step calamine takes to get there. `None` when calamine will refuse the file itself
/// before allocating from it (not a compound file, no workbook stream, …).
fn workbook_stream(file: &[u8]) -> Result<Option<Vec<u8>>, SheetError> {
    let Some(header) = file.get(..512) else {
        return Ok(None);
    };
    if header[..8] != [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1] {
        return Ok(None);
    }
    let field = |at| u32_at(header, at).unwrap_or(0);
    let version = u16_at(header, 26).unwrap_or(0);
    let size: usize = match u16_at(header, 30) {
        Some(9) => 512,
        Some(12) => 4096,
        _ => return Ok(None),
    };
    if u16_at(header, 32) != Some(6) || file.len() < size {
        return Ok(None);
    }
    let sectors = Sectors {
        data: &file[size..],
        size,
    };
    let nsect = (sectors.data.len() / size) as u64;
    let (dir_len, fat_len, dir_start) = (field(40), field(44), field(48));
    let (mini_fat_start, mini_fat_len, difat_start) = (field(60), field(64), field(68));
    // calamine sizes a Vec<u32> from bytes 62..66 (straddling two fields) and another from
    // the FAT sector count: both are allocated before anything is read.
    if field(62) >= 1 << 22 || u64::from(fat_len) > nsect + 1 {
        return Err(damaged("an allocation table larger than the file"));
    }
    let mut difat: Vec<u32> = u32s(&header[76..512]).collect();
    let mut id = difat_start;
    let mut steps = 0u64;
    while id < RESERVED {
        difat.extend(u32s(sectors.get(id)?));
        steps += 1;
        if steps > nsect {
            return Err(damaged("a DIFAT chain that loops"));
        }
        id = difat.pop().unwrap_or(ENDOFCHAIN);
    }
    let fat_sectors: Vec<u32> = difat.into_iter().filter(|id| *id < DIFSECT).collect();
    if fat_sectors.len() as u64 > nsect {
        return Err(damaged("more allocation-table sectors than the file has"));
    }
    let mut fats = Vec::with_capacity(fat_sectors.len() * size / 4);
    for id in fat_sectors {
        fats.extend(u32s(sectors.get(id)?));
    }
    let dir_bytes = u64::from(dir_len) * size as u64;
    let dirs = sectors.chain(dir_start, &fats, Some(dir_bytes))?;
    let entries: Vec<Entry> = dirs
        .chunks_exact(128)
        .map(|e| {
            let mut name = encoding_rs::UTF_16LE.decode(&e[..64]).0.into_owned();
            if let Some(l) = name.as_bytes().iter().position(|b| *b == 0) {
                name.truncate(l);
            }
            let len = if size == 512 {
                u64::from(u32_at(e, 120).unwrap_or(0))
            } else {
                u32_at(e, 120).map_or(0, u64::from) | u64::from(u32_at(e, 124).unwrap_or(0)) << 32
            };
            Entry {
                name,
                start: u32_at(e, 116).unwrap_or(0),
                len,
            }
        })
        .collect();
    if dirs.len() % 128 != 0 {
        return Err(damaged("a directory cut in the middle of an entry"));
    }
    let Some(root) = entries.first() else {
        return Ok(None);
    };
    if version != 3 && root.start == ENDOFCHAIN {
        return Ok(None);
    }
    let (mini_fats, ministream) = if mini_fat_len > 0 {
        let ministream = sectors.chain(root.start, &fats, Some(root.len))?;
        let minifat_bytes = u64::from(mini_fat_len) * size as u64;
        let minifat = sectors.chain(mini_fat_start, &fats, Some(minifat_bytes))?;
        (u32s(&minifat).collect::<Vec<u32>>(), ministream)
    } else {
        (Vec::new(), Vec::new())
    };
    if entries.iter().any(|e| e.name == "_VBA_PROJECT_CUR") {
        return Err(too_big(
            "the workbook holds macros, which the XLS reader would decompress and parse".into(),
        ));
    }
    let Some(stream) = ["Workbook", "Book"]
        .iter()
        .find_map(|n| entries.iter().find(|e| e.name == *n))
    else {
        return Ok(None);
    };
    let bytes = if stream.len < 4096 {
        let mini = Sectors {
            data: &ministream,
            size: 64,
        };
        mini.chain(stream.start, &mini_fats, Some(stream.len))?
    } else {
        sectors.chain(stream.start, &fats, Some(stream.len))?
    };
    Ok(Some(bytes))
}

// ------------------------------------------------------------------ BIFF records

/// One record and the CONTINUE records after it, as calamine's `RecordIter` groups them.
struct Record<'a> {
    typ: u16,
    data: &'a [u8],
    cont: Vec<&'a [u8]>,
}

/// Records from `stream`; stops (as calamine fails) at a record cut short.
fn records(mut stream: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let typ = u16_at(stream, 0)?;
        let len = usize::from(u16_at(stream, 2)?);
        let data = stream.get(4..4 + len)?;
        stream = &stream[4 + len..];
        let mut cont = Vec::new();
        while stream.len() > 4 && u16_at(stream, 0) == Some(0x003C) {
            let l = usize::from(u16_at(stream, 2)?);
            cont.push(stream.get(4..4 + l)?);
            stream = &stream[4 + l..];
        }
        Some(Record { typ, data, cont })
    })
}

/// What the records add up to, against the caps.
struct Biff {
    cells_max: u64,
    text_max: u64,
    formula_max: u64,
    cells: u64,
    area: u64,
    text: u64,
    formula_bytes: u64,
    longest_name: u64,
    /// Characters of each shared string (the last SST record wins, as in calamine).
    sst: Vec<u32>,
}

/// Rows and columns a sheet's cells (or formulas) span.
#[derive(Default)]
struct Span(Option<(u32, u32, u32, u32)>);

impl Span {
    fn add(&mut self, row: u32, col: u32) {
        self.0 = Some(match self.0 {
            None => (row, row, col, col),
            Some((r0, r1, c0, c1)) => (r0.min(row), r1.max(row), c0.min(col), c1.max(col)),
        });
    }
    fn cells(&self) -> u64 {
        self.0.map_or(0, |(r0, r1, c0, c1)| {
            u64::from(r1 - r0 + 1) * u64::from(c1 - c0 + 1)
        })
    }
}

impl Biff {
    fn new(limits: &Limits) -> Biff {
        Biff {
            cells_max: limits.max_rows,
            text_max: limits.max_rows.saturating_mul(16),
            formula_max: limits.max_rows.saturating_mul(32),
            cells: 0,
            area: 0,
            text: 0,
            formula_bytes: 0,
            longest_name: 0,
            sst: Vec::new(),
        }
    }

    fn check(mut self, stream: &[u8]) -> Result<(), SheetError> {
        let mut sheets = Vec::new();
        for r in records(stream) {
            match r.typ {
                // BoundSheet8: where the sheet's records start, and its name
                0x0085 => {
                    let Some(pos) = u32_at(r.data, 0) else {
                        return Ok(()); // calamine fails here
                    };
                    if pos as usize > stream.len() {
                        return Err(damaged("a sheet that starts past the end of the workbook"));
                    }
                    sheets.push(pos as usize);
                    self.name(r.data.get(6));
                }
                // Lbl: a defined name, with its formula
                0x0018 => {
                    self.name(r.data.get(3));
                    self.formula(r.data.len())?;
                }
                0x00FC => match sst_lengths(&r) {
                    Some(l) => self.sst = l,
                    None => return Ok(()), // calamine fails on this SST
                },
                0x000A => break,
                _ => {}
            }
        }
        for pos in sheets {
            self.sheet(&stream[pos..])?;
        }
        Ok(())
    }

    fn name(&mut self, cch: Option<&u8>) {
        self.longest_name = self.longest_name.max(cch.map_or(0, |c| u64::from(*c)));
    }

    /// Formula text calamine will build: a token is at least 3 bytes and becomes at most a
    /// few characters, or a name (a sheet's, a defined name's) and a little more.
    fn formula(&mut self, rgce: usize) -> Result<(), SheetError> {
        self.formula_bytes += rgce as u64;
        let estimate = self.formula_bytes * (4 + (self.longest_name + 16) / 3);
        if estimate > self.formula_max {
            return Err(too_big(format!(
                "its formulas would take more than {} bytes as text (32 bytes a row of \
                 limits.max_rows)",
                self.formula_max
            )));
        }
        Ok(())
    }

    fn cell(&mut self, span: &mut Span, row: u32, col: u32, n: u64) -> Result<(), SheetError> {
        span.add(row, col);
        self.cells += n;
        if self.cells > self.cells_max {
            return Err(too_big(format!(
                "its sheets hold more than {} cells (limits.max_rows)",
                self.cells_max
            )));
        }
        Ok(())
    }

    fn sheet(&mut self, records_from: &[u8]) -> Result<(), SheetError> {
        let (mut cells, mut formulas) = (Span::default(), Span::default());
        for r in records(records_from) {
            let d = r.data;
            let pos = || Some((u32::from(u16_at(d, 0)?), u32::from(u16_at(d, 2)?)));
            match r.typ {
                0x000A => break,
                // DIMENSIONS: calamine reserves rows × columns from it
                0x0200 => {
                    let (rf, rl, cf, cl) = match d.len() {
                        10 => (
                            u32::from(u16_at(d, 0).unwrap_or(0)),
                            u32::from(u16_at(d, 2).unwrap_or(0)),
                            u32::from(u16_at(d, 4).unwrap_or(0)),
                            u32::from(u16_at(d, 6).unwrap_or(0)),
                        ),
                        14 => (
                            u32_at(d, 0).unwrap_or(0),
                            u32_at(d, 4).unwrap_or(0),
                            u32::from(u16_at(d, 8).unwrap_or(0)),
                            u32::from(u16_at(d, 10).unwrap_or(0)),
                        ),
                        _ => return Ok(()), // calamine fails here
                    };
                    let cf = if cf > 0xFF || cl < cf { 0 } else { cf };
                    if rl >= 1 && cl >= 1 {
                        if rl - 1 < rf {
                            return Err(damaged(
                                "a DIMENSIONS record whose last row is before its first",
                            ));
                        }
                        let declared = u64::from(rl - rf) * u64::from(cl - cf);
                        if declared > self.cells_max {
                            return Err(too_big(format!(
                                "a sheet declares {declared} cells (DIMENSIONS), more than {} \
                                 (limits.max_rows)",
                                self.cells_max
                            )));
                        }
                    }
                }
                // Number, Label, BoolErr, RK, RString, Blank: one cell each
                0x0203 | 0x0204 | 0x0205 | 0x027E | 0x00D6 | 0x0201 => {
                    if let Some((row, col)) = pos() {
                        self.cell(&mut cells, row, col, 1)?;
                    }
                }
                // LabelSst: a copy of shared string number `isst`
                0x00FD => {
                    if let (Some((row, col)), Some(isst)) = (pos(), u32_at(d, 6)) {
                        self.cell(&mut cells, row, col, 1)?;
                        let chars = self.sst.get(isst as usize).copied().unwrap_or(0);
                        self.text += u64::from(chars) * 3;
                        if self.text > self.text_max {
                            return Err(too_big(format!(
                                "its cells hold more than {} bytes of shared-string copies \
                                 (16 bytes a row of limits.max_rows)",
                                self.text_max
                            )));
                        }
                    }
                }
                // MulRk: a run of cells in one row
                0x00BD => {
                    if let (Some((row, first)), Some(last)) =
                        (pos(), d.len().checked_sub(2).and_then(|at| u16_at(d, at)))
                    {
                        let last = u32::from(last);
                        if last >= first {
                            self.cell(&mut cells, row, first, u64::from(last - first + 1))?;
                            cells.add(row, last);
                        }
                    }
                }
                // Formula: a cell (its value) and a formula turned into text
                0x0006 => {
                    if let Some((row, col)) = pos() {
                        self.cell(&mut cells, row, col, 1)?;
                        formulas.add(row, col);
                        self.formula(d.len())?;
                    }
                }
                _ => {}
            }
        }
        // Each sheet becomes a dense grid of its cells' span, and another of its formulas'.
        self.area += cells.cells() + formulas.cells();
        if self.area > self.cells_max {
            return Err(too_big(format!(
                "its sheets span more than {} cells (rows × columns; limits.max_rows)",
                self.cells_max
            )));
        }
        Ok(())
    }
}

/// Characters of every string of an SST record (and its CONTINUE records), read the way
/// calamine's `parse_sst` reads them; `None` where calamine would fail.
fn sst_lengths(r: &Record<'_>) -> Option<Vec<u32>> {
    let mut data = r.data.get(8..)?;
    let mut conts = r.cont.iter();
    let mut out = Vec::new();
    // skip `n` bytes, moving into CONTINUE records as needed
    fn skip<'a>(
        data: &mut &'a [u8],
        conts: &mut std::slice::Iter<'_, &'a [u8]>,
        mut n: usize,
    ) -> Option<()> {
        while n > 0 {
            if data.is_empty() {
                *data = conts.next()?;
            }
            let k = n.min(data.len());
            *data = &data[k..];
            n -= k;
        }
        Some(())
    }
    loop {
        if data.is_empty() {
            match conts.next() {
                Some(c) => data = c,
                None => return Some(out),
            }
        }
        let cch = usize::from(u16_at(data, 0)?);
        let flags = *data.get(2)?;
        data = &data[3..];
        let mut high = flags & 1 != 0;
        let mut runs = 0usize;
        let mut ext = 0usize;
        if flags & 0x8 != 0 {
            runs = usize::from(u16_at(data, 0)?);
            data = &data[2..];
        }
        if flags & 0x4 != 0 {
            ext = u32_at(data, 0)? as usize;
            data = &data[4..];
        }
        let mut left = cch;
        loop {
            let width = if high { 2 } else { 1 };
            let k = left.min(data.len() / width);
            data = &data[k * width..];
            left -= k;
            if left == 0 {
                break;
            }
            let next = conts.next()?;
            high = *next.first()? & 1 != 0;
            data = &next[1..];
        }
        skip(&mut data, &mut conts, runs * 4)?;
        skip(&mut data, &mut conts, ext)?;
        out.push(u32::try_from(cch).ok()?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-3 compound file holding one stream, in regular sectors (padded to 4 KiB).
    pub(crate) fn compound(name: &str, stream: &[u8]) -> Vec<u8> {
        let mut stream = stream.to_vec();
        if stream.len() < 4096 {
            stream.resize(4096, 0);
        }
        let n = stream.len().div_ceil(512);
        // sectors: 0 = FAT, 1 = directory, 2.. = stream
        let mut fat = vec![0xFFFF_FFFFu32; 128];
        fat[0] = 0xFFFF_FFFD;
        fat[1] = ENDOFCHAIN;
        for i in 0..n {
            fat[2 + i] = if i + 1 == n {
                ENDOFCHAIN
            } else {
                (3 + i) as u32
            };
        }
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
        h[24..26].copy_from_slice(&0x3Eu16.to_le_bytes());
        h[26..28].copy_from_slice(&3u16.to_le_bytes());
        h[28..30].copy_from_slice(&0xFFFEu16.to_le_bytes());
        h[30..32].copy_from_slice(&9u16.to_le_bytes());
        h[32..34].copy_from_slice(&6u16.to_le_bytes());
        h[44..48].copy_from_slice(&1u32.to_le_bytes());
        h[48..52].copy_from_slice(&1u32.to_le_bytes());
        h[56..60].copy_from_slice(&4096u32.to_le_bytes());
        h[60..64].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
        h[68..72].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
        for i in 0..109 {
            let v: u32 = if i == 0 { 0 } else { 0xFFFF_FFFF };
            h[76 + i * 4..80 + i * 4].copy_from_slice(&v.to_le_bytes());
        }
        let mut out = h;
        for v in &fat {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut dir = vec![0u8; 512];
        for (k, (nm, typ, start, len)) in [
            ("Root Entry", 5u8, ENDOFCHAIN, 0u32),
            (name, 2, 2, stream.len() as u32),
        ]
        .iter()
        .enumerate()
        {
            let e = &mut dir[k * 128..(k + 1) * 128];
            let utf16: Vec<u8> = nm.encode_utf16().flat_map(u16::to_le_bytes).collect();
            e[..utf16.len()].copy_from_slice(&utf16);
            e[64..66].copy_from_slice(&((utf16.len() + 2) as u16).to_le_bytes());
            e[66] = *typ;
            e[116..120].copy_from_slice(&start.to_le_bytes());
            e[120..124].copy_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&dir);
        stream.resize(n * 512, 0);
        out.extend_from_slice(&stream);
        out
    }

    pub(crate) fn record(typ: u16, data: &[u8]) -> Vec<u8> {
        let mut r = typ.to_le_bytes().to_vec();
        r.extend_from_slice(&(data.len() as u16).to_le_bytes());
        r.extend_from_slice(data);
        r
    }

    /// Globals (BOF, one BoundSheet, EOF) then one sheet made of `sheet` records.
    pub(crate) fn workbook(sheet: &[Vec<u8>]) -> Vec<u8> {
        let bof = record(0x0809, &[0x00, 0x06, 0x05, 0x00, 0, 0, 0, 0]);
        let mut bound = vec![0u8; 8];
        bound.extend_from_slice(b"S");
        bound[6] = 1;
        let globals_len = bof.len() + record(0x0085, &bound).len() + 4;
        bound[..4].copy_from_slice(&(globals_len as u32).to_le_bytes());
        let mut s = bof.clone();
        s.extend(record(0x0085, &bound));
        s.extend(record(0x000A, &[]));
        s.extend(bof);
        for r in sheet {
            s.extend_from_slice(r);
        }
        s.extend(record(0x000A, &[]));
        s
    }

    fn dims(rows: u32, cols: u16) -> Vec<u8> {
        let mut d = 0u32.to_le_bytes().to_vec();
        d.extend_from_slice(&rows.to_le_bytes());
        d.extend_from_slice(&0u16.to_le_bytes());
        d.extend_from_slice(&cols.to_le_bytes());
        d.extend_from_slice(&[0, 0]);
        record(0x0200, &d)
    }

    fn number(row: u16, col: u16) -> Vec<u8> {
        let mut d = row.to_le_bytes().to_vec();
        d.extend_from_slice(&col.to_le_bytes());
        d.extend_from_slice(&[0; 10]);
        record(0x0203, &d)
    }

    fn limits(max_rows: u64) -> Limits {
        Limits {
            max_rows,
            ..Limits::default()
        }
    }

    fn check_bytes(bytes: &[u8], l: &Limits) -> Result<(), SheetError> {
        match workbook_stream(bytes)? {
            Some(s) => Biff::new(l).check(&s),
            None => Ok(()),
        }
    }

    #[test]
    fn a_real_workbook_passes_and_its_stream_is_found_in_the_mini_stream() {
        let b = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sheets/calamine/date.xls"),
        )
        .unwrap();
        let stream = workbook_stream(&b).unwrap().unwrap();
        assert_eq!(stream.len(), 1895);
        assert_eq!(u16_at(&stream, 0), Some(0x0809)); // BOF
        assert!(check_bytes(&b, &Limits::default()).is_ok());
        assert!(
            check_bytes(&b, &limits(2)).is_err(),
            "3 cells over a 2-cell cap"
        );
    }

    #[test]
    fn built_workbooks_are_counted_like_calamine_loads_them() {
        let ok = compound(
            "Workbook",
            &workbook(&[dims(2, 2), number(0, 0), number(1, 1)]),
        );
        assert!(check_bytes(&ok, &limits(4)).is_ok());
        // two cells at far corners: a dense grid of 65,536 × 256
        let corners = compound("Workbook", &workbook(&[number(0, 0), number(65_535, 255)]));
        let e = check_bytes(&corners, &limits(1_000_000))
            .unwrap_err()
            .to_string();
        assert!(e.contains("span more than 1000000 cells"), "{e}");
        // a DIMENSIONS record of 4 billion rows (calamine would reserve them)
        let claim = compound("Workbook", &workbook(&[dims(u32::MAX, 256), number(0, 0)]));
        let e = check_bytes(&claim, &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DIMENSIONS") && e.contains("save it as XLSX"),
            "{e}"
        );
        let mut inverted = 5u32.to_le_bytes().to_vec();
        inverted.extend_from_slice(&2u32.to_le_bytes());
        inverted.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
        let inv = compound("Workbook", &workbook(&[record(0x0200, &inverted)]));
        assert!(check_bytes(&inv, &Limits::default()).is_err());
        // BIFF5 names its stream "Book"
        let book = compound("Book", &workbook(&[number(0, 0), number(65_535, 255)]));
        assert!(check_bytes(&book, &Limits::default()).is_err());
    }

    #[test]
    fn shared_string_copies_are_counted_per_cell() {
        // SST of one 1000-character string, then 100 LabelSst cells using it
        let mut sst = 1u32.to_le_bytes().to_vec();
        sst.extend_from_slice(&1u32.to_le_bytes());
        sst.extend_from_slice(&1000u16.to_le_bytes());
        sst.push(0);
        sst.extend(std::iter::repeat_n(b'x', 1000));
        let label = |row: u16| {
            let mut d = row.to_le_bytes().to_vec();
            d.extend_from_slice(&[0, 0, 0, 0]);
            d.extend_from_slice(&0u32.to_le_bytes());
            record(0x00FD, &d)
        };
        let mut globals_extra = record(0x00FC, &sst);
        let cells: Vec<Vec<u8>> = (0..100).map(label).collect();
        let mut wb = workbook(&cells);
        // put the SST in the globals, before their EOF, and move the sheet's offset along
        let bound_at = 12;
        let pos = u32_at(&wb, bound_at + 4).unwrap() + globals_extra.len() as u32;
        wb[bound_at + 4..bound_at + 8].copy_from_slice(&pos.to_le_bytes());
        let eof_at = pos as usize - globals_extra.len() - 4;
        let tail = wb.split_off(eof_at);
        wb.append(&mut globals_extra);
        wb.extend(tail);
        let b = compound("Workbook", &wb);
        // 100 copies × 1000 characters × 3 bytes = 300 KB: over a 16 × 10,000 byte cap
        let e = check_bytes(&b, &limits(10_000)).unwrap_err().to_string();
        assert!(e.contains("shared-string copies"), "{e}");
        assert!(check_bytes(&b, &limits(100_000)).is_ok());
    }

    #[test]
    fn compound_file_tricks_are_refused() {
        let good = compound("Workbook", &workbook(&[number(0, 0)]));
        assert!(check_bytes(&good, &Limits::default()).is_ok());
        let patch = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        // the stream's chain loops: sector 2 points back at itself
        let looped = patch(512 + 2 * 4, 2);
        // a sector far past the end of the file (calamine would grow its cache to it)
        let far = patch(512 + 512 + 128 + 116, 0x0FFF_FFFF);
        // a directory claiming a 4 GiB stream
        let long = patch(512 + 512 + 128 + 120, 0xFFFF_FFF0);
        // a FAT sector count larger than the file
        let fats = patch(44, 0x00FF_FFFF);
        for (what, b) in [
            ("loop", looped),
            ("far", far),
            ("long", long),
            ("fats", fats),
        ] {
            let e = check_bytes(&b, &Limits::default()).unwrap_err().to_string();
            assert!(e.contains("crafted or damaged"), "{what}: {e}");
        }
        // not a compound file at all: calamine says so itself
        assert!(check_bytes(b"not ole", &Limits::default()).is_ok());
    }
}
