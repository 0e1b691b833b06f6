//! The workbook pre-pass: what a zip-based workbook (XLSX, XLSB, ODS) really holds,
//! counted while inflating, before calamine reads any of it.
//!
//! Why a pre-pass and not a fix inside calamine: calamine opens the zip itself and hands
//! each part to quick-xml, which buffers whole text nodes and tags; it loads the
//! shared-strings table, the styles and the workbook part whole, and reads a cell's text
//! whole before anyone can look at its length. None of that can be bounded from outside.
//! So every part calamine will read is first inflated here, by our own inflater over the
//! entry's raw bytes, through a byte-level scanner that holds at most one tag. What the
//! zip directory *claims* (entry sizes) is never trusted; what comes out of the inflater
//! is counted. Only when the whole workbook passes does calamine open it, and then it can
//! only meet parts whose every token, table and cell is within the caps below. The cost
//! is inflating those parts twice: 0.26 s for a 100,000-row XLSX, 29 % of reading it
//! (BENCHMARKS.md, "Hostile sheets").
//!
//! Caps, all derived from the configured [`Limits`] (defaults in parentheses):
//! - the zip directory: at most [`MAX_ENTRIES`] entries and [`MAX_DIRECTORY_BYTES`] of
//!   names and extra fields, counted from the file's bytes before the zip crate parses it
//!   (it would keep every entry, and trusts a ZIP64 entry count for an allocation);
//! - everything inflated, all parts together: `max_file_bytes` × [`super::MAX_ZIP_RATIO`]
//!   (16 × 200 MiB): the zip-bomb budget;
//! - any text between two tags: `max_cell_chars` characters where it is a cell's text,
//!   `max(max_cell_chars, 65,536)` elsewhere; any tag, comment or CDATA: 64 KiB;
//! - a cell: `max_cell_chars` characters, counted across rich-text runs, stopped there;
//! - the text all cells of the sheet hold: `128 × max_rows` bytes (128 MB), a shared string
//!   counted once for every cell that uses it, since each such cell gets its own copy (one
//!   long string referenced a million times is gigabytes from a file of a few MB);
//! - the shared-strings table (calamine keeps it whole): `2 × max_rows` strings and
//!   `64 × max_rows` bytes of text (2,000,000 strings, 64 MB: two distinct texts of 32 bytes
//!   a row, say a UPN and a name; other columns repeat or are numbers);
//! - the other parts calamine keeps whole: `xl/styles.xml` 8 MiB, `xl/workbook.xml`
//!   4 MiB, its relationships 1 MiB (real ones are a few KiB to a few MiB);
//! - ODS, which calamine loads whole: see [`super::odscheck`]; XLSB (binary): every record
//!   at most `max(2 × max_cell_chars + 1 KiB, 64 KiB)` (calamine allocates a record's
//!   declared length) and the shared strings counted as above, see [`check_xlsb`].
//!
//! The XLSX worksheet that will be read is checked cell by cell too: a formula without a
//! saved value, a shared-string index past the table and a cell reference outside Excel's
//! grid are errors naming the cell (calamine would read the first as empty and panic on
//! the second).

use super::xmlscan::{unescape, Halt, Scanner, Sink, Tag};
use super::{Format, Limits, ReadOptions, SheetError};
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use zip::ZipArchive;

/// Most entries a workbook's zip directory may list. Real workbooks have tens to a few
/// hundred; the zip crate keeps a few hundred bytes per entry.
pub(super) const MAX_ENTRIES: u64 = 10_000;
/// Most bytes of entry names, extra fields and comments in the zip directory.
pub(super) const MAX_DIRECTORY_BYTES: u64 = 8 * 1024 * 1024;
/// Parts calamine keeps whole, with the most we inflate of each.
const STYLES_MAX: u64 = 8 * 1024 * 1024;
const WORKBOOK_MAX: u64 = 4 * 1024 * 1024;
const RELS_MAX: u64 = 1024 * 1024;
/// Longest text between tags outside cells (formulas, defined names), at least.
const OTHER_TEXT_MIN: u64 = 65_536;
/// Inflation buffer.
const CHUNK: usize = 64 * 1024;

/// The inflation budget shared by all parts of one workbook.
pub(super) struct Budget {
    pub(super) max: u64,
    pub(super) used: u64,
}

impl Budget {
    pub(super) fn new(limits: &Limits) -> Budget {
        Budget {
            max: limits.max_file_bytes.saturating_mul(super::MAX_ZIP_RATIO),
            used: 0,
        }
    }
}

/// Caps derived from the limits for one workbook.
pub(super) struct Caps {
    pub(super) cell_chars: u64,
    pub(super) other_text: u64,
    pub(super) sst_strings: u64,
    pub(super) sst_bytes: u64,
    /// Text all cells of the sheet hold, a shared string counted in every cell using it.
    pub(super) cell_text: u64,
}

impl Caps {
    pub(super) fn new(limits: &Limits) -> Caps {
        Caps {
            cell_chars: u64::from(limits.max_cell_chars),
            other_text: u64::from(limits.max_cell_chars).max(OTHER_TEXT_MIN),
            sst_strings: limits.max_rows.saturating_mul(2),
            sst_bytes: limits.max_rows.saturating_mul(64),
            cell_text: limits.max_rows.saturating_mul(128),
        }
    }
}

/// Checks a zip-based workbook and tells its format. Runs before calamine sees the file.
pub(super) fn inspect(path: &Path, opts: &ReadOptions) -> Result<Format, SheetError> {
    let mut file = super::open_regular(path)?;
    check_directory(&mut file)?;
    file.rewind().map_err(|e| SheetError::Io(e.to_string()))?;
    let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|e| SheetError::Corrupt {
        format: Format::Xlsx,
        message: format!("not a readable zip archive ({e})"),
    })?;
    let format = if zip.index_for_name("xl/workbook.xml").is_some() {
        Format::Xlsx
    } else if zip.index_for_name("xl/workbook.bin").is_some() {
        Format::Xlsb
    } else if zip.index_for_name("content.xml").is_some() {
        Format::Ods
    } else {
        return Err(SheetError::NotASpreadsheet(
            "a zip archive without a workbook (no xl/workbook.xml or content.xml)".into(),
        ));
    };
    let mut budget = Budget::new(&opts.limits);
    let caps = Caps::new(&opts.limits);
    match format {
        Format::Xlsx => check_xlsx(&mut zip, opts, &caps, &mut budget)?,
        Format::Xlsb => check_xlsb(&mut zip, &caps, &mut budget)?,
        Format::Ods => super::odscheck::check(&mut zip, &opts.limits, &caps, &mut budget)?,
        Format::Csv | Format::Xls => {}
    }
    Ok(format)
}

// ------------------------------------------------------------------ zip directory

/// Counts the central-directory records in the file's bytes (not the count the end record
/// claims) and the bytes their names, extra fields and comments take, and checks every
/// ZIP64 end record's entry count: all before the zip crate keeps any of them. A stray
/// signature inside compressed data only makes the count more cautious.
fn check_directory(file: &mut File) -> Result<(), SheetError> {
    const CDFH: &[u8; 4] = b"PK\x01\x02";
    const EOCD64: &[u8; 4] = b"PK\x06\x06";
    /// Bytes of a record needed after its signature's first byte.
    const HEAD: usize = 56;
    let io = |e: std::io::Error| SheetError::Io(e.to_string());
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 20];
    let (mut entries, mut bytes) = (0u64, 0u64);
    let too_many = |what: String| SheetError::ZipDirectory(what);
    loop {
        let n = file.read(&mut chunk).map_err(io)?;
        let eof = n == 0;
        buf.extend_from_slice(&chunk[..n]);
        let end = if eof {
            buf.len()
        } else {
            buf.len().saturating_sub(HEAD)
        };
        let mut at = 0;
        // Every signature starting before `end` has its whole header in `buf` (or the file
        // ends); one starting at or after `end` is kept for the next round.
        while let Some(p) = buf[at..end].iter().position(|b| *b == b'P') {
            let i = at + p;
            let sig = buf.get(i..i + 4);
            if sig == Some(CDFH) {
                entries += 1;
                let u16_at = |o: usize| {
                    buf.get(i + o..i + o + 2)
                        .map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])))
                };
                bytes += u16_at(28) + u16_at(30) + u16_at(32);
                if entries > MAX_ENTRIES {
                    return Err(too_many(format!(
                        "the zip directory lists more than {MAX_ENTRIES} entries"
                    )));
                }
                if bytes > MAX_DIRECTORY_BYTES {
                    return Err(too_many(format!(
                        "the zip directory's names and extra fields take more than \
                         {MAX_DIRECTORY_BYTES} bytes"
                    )));
                }
            } else if sig == Some(EOCD64) {
                let u64_at = |o: usize| {
                    buf.get(i + o..i + o + 8).map_or(0, |b| {
                        u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                    })
                };
                if u64_at(24) > MAX_ENTRIES || u64_at(32) > MAX_ENTRIES {
                    return Err(too_many(format!(
                        "the zip directory claims more than {MAX_ENTRIES} entries"
                    )));
                }
            }
            at = i + 1;
        }
        if eof {
            return Ok(());
        }
        buf.drain(..end);
    }
}

// ------------------------------------------------------------------ inflating parts

/// The most one part may inflate to, and what that cap is called in messages.
pub(super) type PartCap = Option<(u64, &'static str)>;

/// A zip entry to inflate: where it is and how errors name it.
pub(super) struct Part<'a> {
    pub(super) index: usize,
    pub(super) label: &'a str,
    pub(super) cap: PartCap,
}

/// Inflates one entry from its raw bytes, counting what comes out against the part's cap
/// and the workbook's budget, and hands each chunk to `f`.
fn inflate<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    part: &Part<'_>,
    format: Format,
    budget: &mut Budget,
    mut f: impl FnMut(&[u8]) -> Result<(), Halt>,
) -> Result<(), Halt> {
    let corrupt = |message: String| Halt::Fail(SheetError::Corrupt { format, message });
    let entry = zip
        .by_index_raw(part.index)
        .map_err(|e| corrupt(format!("{}: unreadable zip entry ({e})", part.label)))?;
    if entry.encrypted() {
        return Err(corrupt(format!(
            "{} is encrypted inside the zip; save the workbook without a password",
            part.label
        )));
    }
    let mut reader: Box<dyn Read + '_> = match entry.compression() {
        zip::CompressionMethod::Stored => Box::new(entry),
        zip::CompressionMethod::Deflated => Box::new(flate2::read::DeflateDecoder::new(entry)),
        other => {
            return Err(corrupt(format!(
                "{} uses compression {other}, which spreadsheet programs do not write",
                part.label
            )))
        }
    };
    let mut buf = vec![0u8; CHUNK];
    let mut here = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(format!("{}: cannot inflate ({e})", part.label))),
        };
        here += n as u64;
        budget.used += n as u64;
        if budget.used > budget.max {
            return Err(SheetError::Inflated {
                part: part.label.to_string(),
                budget: budget.max,
            }
            .into());
        }
        if let Some((max, what)) = part.cap {
            if here > max {
                return Err(SheetError::PartTooBig {
                    part: part.label.to_string(),
                    max,
                    what,
                }
                .into());
            }
        }
        f(&buf[..n])?;
    }
}

/// Inflates an XML part through the scanner and `sink`, to its end or until the sink has
/// seen what it needed.
pub(super) fn scan_xml<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    part: &Part<'_>,
    format: Format,
    run_max: u64,
    budget: &mut Budget,
    sink: &mut impl Sink,
) -> Result<(), SheetError> {
    let mut scanner = Scanner::new(part.label, run_max);
    match inflate(zip, part, format, budget, |chunk| scanner.feed(chunk, sink)) {
        Ok(()) => Ok(scanner.finish()?),
        Err(Halt::Done) => Ok(()),
        Err(Halt::Fail(e)) => Err(e),
    }
}

/// The entry calamine opens for `path`: the first whose name matches it ignoring ASCII
/// case and with `\` read as `/` (calamine's `path_to_zip_path`), else `path` itself.
pub(super) fn entry_index<R: Read + Seek>(zip: &ZipArchive<R>, path: &str) -> Option<usize> {
    let name = zip
        .file_names()
        .find(|n| n.replace('\\', "/").eq_ignore_ascii_case(path))
        .map_or_else(|| path.to_string(), str::to_string);
    zip.index_for_name(&name)
}

/// A sink that only applies the scanner's own caps.
pub(super) struct Plain;

impl Sink for Plain {
    fn tag(&mut self, _: &Tag<'_>) -> Result<(), Halt> {
        Ok(())
    }
    fn text(&mut self, _: &[u8], _: u64) -> Result<(), Halt> {
        Ok(())
    }
}

// ------------------------------------------------------------------ XLSX

fn check_xlsx<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    opts: &ReadOptions,
    caps: &Caps,
    budget: &mut Budget,
) -> Result<(), SheetError> {
    let fmt = Format::Xlsx;
    let mut rels = Rels::default();
    if let Some(index) = entry_index(zip, "xl/_rels/workbook.xml.rels") {
        let part = Part {
            index,
            label: "xl/_rels/workbook.xml.rels",
            cap: Some((RELS_MAX, "relationships")),
        };
        scan_xml(zip, &part, fmt, caps.other_text, budget, &mut rels)?;
    }
    let mut workbook = Workbook::default();
    if let Some(index) = entry_index(zip, "xl/workbook.xml") {
        let part = Part {
            index,
            label: "xl/workbook.xml",
            cap: Some((WORKBOOK_MAX, "workbook part")),
        };
        scan_xml(zip, &part, fmt, caps.other_text, budget, &mut workbook)?;
    }
    let mut sst = SharedStrings::new(caps);
    if let Some(index) = entry_index(zip, "xl/sharedStrings.xml") {
        let part = Part {
            index,
            label: "xl/sharedStrings.xml",
            cap: None,
        };
        // Stops early at a string over max_cell_chars, which the sheet scan locates.
        scan_xml(zip, &part, fmt, caps.other_text, budget, &mut sst)?;
    }
    if let Some(index) = entry_index(zip, "xl/styles.xml") {
        let part = Part {
            index,
            label: "xl/styles.xml",
            cap: Some((STYLES_MAX, "styles part")),
        };
        scan_xml(zip, &part, fmt, caps.other_text, budget, &mut Plain)?;
    }
    // The worksheet calamine will stream, chosen the way `xlsx::pick_sheet` will choose it.
    // When it cannot be told (a broken workbook part), calamine reports the problem.
    let Some((name, path)) = workbook.choose(&rels, opts.sheet_name.as_deref()) else {
        return sst.unlocated();
    };
    let Some(index) = entry_index(zip, &path) else {
        return sst.unlocated();
    };
    let label = format!("{path} (sheet {name:?})");
    let part = Part {
        index,
        label: &label,
        cap: None,
    };
    let mut cells = SheetCells::new(caps, &sst);
    scan_xml(zip, &part, fmt, caps.other_text, budget, &mut cells)?;
    if let Some((row, column)) = cells.formula_without_value {
        return Err(SheetError::FormulaWithoutValue {
            row,
            column,
            more: cells.formulas_without_value - 1,
        });
    }
    sst.unlocated()
}

/// `xl/_rels/workbook.xml.rels`: relationship id → target, as calamine reads them (the
/// target decoded but not unescaped).
#[derive(Default)]
struct Rels {
    targets: Vec<(Vec<u8>, String)>,
}

impl Sink for Rels {
    fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
        if !t.closing && t.local == b"Relationship" {
            if let (Some(id), Some(target)) = (t.attr(b"Id"), t.attr(b"Target")) {
                let target = String::from_utf8_lossy(target).into_owned();
                // calamine keeps the last of duplicate ids
                self.targets.retain(|(i, _)| i != id);
                self.targets.push((id.to_vec(), target));
            }
        }
        Ok(())
    }
    fn text(&mut self, _: &[u8], _: u64) -> Result<(), Halt> {
        Ok(())
    }
}

/// `xl/workbook.xml`: the sheets, in order, as (name, relationship id).
#[derive(Default)]
struct Workbook {
    sheets: Vec<(Option<String>, Option<Vec<u8>>)>,
}

impl Sink for Workbook {
    fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
        if !t.closing && t.local == b"sheet" {
            let name = t.attr(b"name").and_then(unescape);
            let rid = t
                .attr(b"r:id")
                .or_else(|| t.attr(b"relationships:id"))
                .map(<[u8]>::to_vec);
            self.sheets.push((name, rid));
        }
        Ok(())
    }
    fn text(&mut self, _: &[u8], _: u64) -> Result<(), Halt> {
        Ok(())
    }
}

impl Workbook {
    /// (name, part path) of the sheet calamine will stream: the name is chosen among the
    /// worksheets as `xlsx::pick_sheet` chooses it (the named one, exact then ignoring ASCII
    /// case, or the first), and the path is that of the first sheet of any kind with that
    /// name, as calamine's lookup by name finds it. Paths are formed as calamine forms them.
    fn choose(&self, rels: &Rels, wanted: Option<&str>) -> Option<(String, String)> {
        let mut sheets = Vec::new();
        for (name, rid) in &self.sheets {
            let target = &rels
                .targets
                .iter()
                .find(|(i, _)| Some(i) == rid.as_ref())?
                .1;
            let path = if let Some(p) = target.strip_prefix('/').filter(|p| p.starts_with("xl/")) {
                p.to_string()
            } else if target.starts_with("xl/") {
                target.clone()
            } else {
                format!("xl/{target}")
            };
            let worksheet = path.split('/').nth(1) == Some("worksheets");
            sheets.push((name.clone()?, path, worksheet));
        }
        let worksheets = || sheets.iter().filter(|s| s.2);
        let name = &match wanted {
            Some(w) => worksheets()
                .find(|s| s.0 == w)
                .or_else(|| worksheets().find(|s| s.0.eq_ignore_ascii_case(w)))?,
            None => worksheets().next()?,
        }
        .0;
        let path = &sheets.iter().find(|s| &s.0 == name)?.1;
        Some((name.clone(), path.clone()))
    }
}

/// `xl/sharedStrings.xml`: counts strings and their text against the caps, stops at the
/// first string over `max_cell_chars`, and refuses the tables calamine 0.31 misreads:
/// - an `<si>` whose text is not a `<t>…</t>` element or rich runs (`<si></si>`,
///   `<si><t/></si>`) is skipped by calamine, so every later shared string shifts by one;
/// - an `<si>` with plain `<t>` text followed by rich `<r>` runs is cut to the plain part.
pub(super) struct SharedStrings {
    cell_chars: u64,
    max_strings: u64,
    max_bytes: u64,
    /// Strings seen (complete ones).
    pub(super) count: u64,
    bytes: u64,
    depth: usize,
    /// (depth of the open `<si>`, saw a `<t>`, saw an `<r>`, characters so far).
    si: Option<(usize, bool, bool, u64)>,
    /// Text bytes of the open string.
    si_bytes: u64,
    /// Depth of the open `<t>` inside the current string, if any.
    t_depth: Option<usize>,
    /// Open `<rPh>` (phonetic runs, which calamine leaves out) elements.
    rph: usize,
    /// The first string over `max_cell_chars`: the scan stopped there.
    pub(super) too_long: Option<u64>,
    /// Text bytes of each string, for counting the copies cells make.
    pub(super) lengths: Vec<u32>,
}

impl SharedStrings {
    fn new(caps: &Caps) -> SharedStrings {
        SharedStrings {
            cell_chars: caps.cell_chars,
            max_strings: caps.sst_strings,
            max_bytes: caps.sst_bytes,
            count: 0,
            bytes: 0,
            depth: 0,
            si: None,
            si_bytes: 0,
            t_depth: None,
            rph: 0,
            too_long: None,
            lengths: Vec::new(),
        }
    }

    fn misread(&self, what: &str) -> SheetError {
        SheetError::Unsupported(format!(
            "shared string #{} {what}, which the XLSX reader (calamine 0.31) would read \
             wrongly; re-save the workbook from Excel or LibreOffice, or export it as CSV UTF-8",
            self.count
        ))
    }

    /// The error for a string over the cell limit that no cell of the sheet uses (or the
    /// sheet could not be told): the part and the string's number, no row.
    fn unlocated(&self) -> Result<(), SheetError> {
        match self.too_long {
            Some(index) => Err(SheetError::SharedStringTooLong {
                index,
                max: self.cell_chars,
            }),
            None => Ok(()),
        }
    }
}

impl Sink for SharedStrings {
    fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
        if t.closing {
            if self.t_depth == Some(self.depth) {
                self.t_depth = None;
            }
            if t.local == b"rPh" {
                self.rph = self.rph.saturating_sub(1);
            }
            self.depth = self.depth.saturating_sub(1);
            if t.local == b"si" {
                if let Some((_, has_t, has_r, _)) = self.si.take() {
                    if !has_t && !has_r {
                        return Err(self.misread("is empty").into());
                    }
                    self.count += 1;
                    self.lengths
                        .push(u32::try_from(self.si_bytes).unwrap_or(u32::MAX));
                    self.si_bytes = 0;
                }
            }
            return Ok(());
        }
        if t.self_closing {
            if t.local == b"si" && self.si.is_none() {
                return Err(self.misread("is empty").into());
            }
            return Ok(());
        }
        self.depth += 1;
        let depth = self.depth;
        match (t.local, self.si.as_mut()) {
            (b"si", None) => {
                if self.count >= self.max_strings {
                    return Err(SheetError::TooManySharedStrings {
                        max: self.max_strings,
                    }
                    .into());
                }
                self.si = Some((depth, false, false, 0));
                self.rph = 0;
            }
            (b"t", Some((d, has_t, _, _))) => {
                if depth == *d + 1 {
                    *has_t = true;
                }
                self.t_depth = Some(depth);
            }
            (b"r", Some((d, has_t, has_r, _))) if depth == *d + 1 => {
                if *has_t {
                    return Err(self.misread("mixes plain text and rich-text runs").into());
                }
                *has_r = true;
            }
            (b"rPh", Some(_)) => self.rph += 1,
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, raw: &[u8], chars: u64) -> Result<(), Halt> {
        if self.t_depth.is_none() || self.rph > 0 {
            return Ok(());
        }
        let Some((_, _, _, len)) = self.si.as_mut() else {
            return Ok(());
        };
        *len += chars;
        if *len > self.cell_chars {
            self.too_long = Some(self.count);
            return Err(Halt::Done);
        }
        self.bytes += raw.len() as u64;
        self.si_bytes += raw.len() as u64;
        if self.bytes > self.max_bytes {
            return Err(SheetError::SharedStringsTooLarge {
                max: self.max_bytes,
            }
            .into());
        }
        Ok(())
    }
}

/// The worksheet calamine will stream: cell positions tracked exactly as calamine's cell
/// reader tracks them, so errors name the cell a user sees.
struct SheetCells<'s> {
    cell_chars: u64,
    /// Text bytes of each shared string, and the most all cells may hold.
    sst_lengths: &'s [u32],
    text_max: u64,
    text: u64,
    /// Strings in the shared-strings table, when it was read to the end.
    sst_count: Option<u64>,
    /// A shared string over the cell limit: the first cell using it is the error.
    sst_too_long: Option<u64>,
    row_index: u32,
    col_index: u32,
    cell: Option<CellScan>,
    formula_without_value: Option<(u64, usize)>,
    formulas_without_value: u64,
}

#[derive(Default)]
struct CellScan {
    /// 0-based (row, column).
    pos: (u32, u32),
    /// The `t` attribute, as far as the checks need it.
    typ: CellType,
    formula: bool,
    value: bool,
    inline: bool,
    in_v: bool,
    in_is: usize,
    rph: usize,
    /// The start of the `<v>` text (an index or number fits), kept without allocating:
    /// the scan sees every cell of the sheet.
    v: [u8; 24],
    v_len: usize,
    chars: u64,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum CellType {
    #[default]
    Other,
    /// `s`: a shared string.
    Shared,
    /// `str`: a formula's text result.
    Str,
}

impl CellScan {
    fn v(&self) -> &[u8] {
        &self.v[..self.v_len]
    }
}

impl<'s> SheetCells<'s> {
    fn new(caps: &Caps, sst: &'s SharedStrings) -> SheetCells<'s> {
        SheetCells {
            cell_chars: caps.cell_chars,
            sst_lengths: &sst.lengths,
            text_max: caps.cell_text,
            text: 0,
            sst_count: sst.too_long.is_none().then_some(sst.count),
            sst_too_long: sst.too_long,
            row_index: 0,
            col_index: 0,
            cell: None,
            formula_without_value: None,
            formulas_without_value: 0,
        }
    }

    fn finish_cell(&mut self, c: CellScan) -> Result<(), SheetError> {
        let (row, column) = (u64::from(c.pos.0) + 1, c.pos.1 as usize);
        let typ = c.typ;
        // `<v></v>` is a saved empty text only for a text-typed formula (`t="str"`):
        // scripts that cannot compute write an empty `<v>` under other types.
        let saved = c.inline || (c.value && (c.v_len > 0 || typ == CellType::Str));
        if c.formula && !saved {
            self.formulas_without_value += 1;
            if self.formula_without_value.is_none() {
                self.formula_without_value = Some((row, column));
            }
        }
        if typ == CellType::Shared && c.value {
            // calamine reads a non-number as 0
            let index = std::str::from_utf8(c.v())
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if self.sst_too_long == Some(index) {
                return Err(SheetError::CellCut {
                    row,
                    column,
                    max: self.cell_chars,
                });
            }
            if let Some(count) = self.sst_count {
                if index >= count {
                    return Err(SheetError::SharedStringIndex {
                        row,
                        column,
                        index,
                        count,
                    });
                }
            }
            let copy = usize::try_from(index)
                .ok()
                .and_then(|i| self.sst_lengths.get(i))
                .copied()
                .unwrap_or(0);
            self.add_text(u64::from(copy))?;
        }
        Ok(())
    }

    fn add_text(&mut self, bytes: u64) -> Result<(), SheetError> {
        self.text += bytes;
        if self.text > self.text_max {
            return Err(SheetError::TooBig(format!(
                "the sheet's cells hold more than {} bytes of text (128 a row of \
                 limits.max_rows), a shared string counted in every cell that uses it",
                self.text_max
            )));
        }
        Ok(())
    }

    fn cell_ref(&self, r: &[u8]) -> Result<(u32, Option<u32>), SheetError> {
        parse_ref(r).ok_or_else(|| SheetError::CellReference {
            row: u64::from(self.row_index) + 1,
            reference: String::from_utf8_lossy(&r[..r.len().min(32)]).into_owned(),
        })
    }
}

/// `B5` → (4, Some(1)); `5` → (4, None). `None` for anything calamine would not read or
/// that is outside Excel's grid (1,048,576 rows × 16,384 columns), where calamine's own
/// arithmetic would overflow.
fn parse_ref(r: &[u8]) -> Option<(u32, Option<u32>)> {
    let letters = r.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let digits = &r[letters..];
    if letters > 3 || digits.is_empty() || digits.len() > 7 {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let row: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if row == 0 || row > 1_048_576 {
        return None;
    }
    let col = if letters == 0 {
        None
    } else {
        let mut c = 0u32;
        for b in &r[..letters] {
            c = c * 26 + u32::from(b.to_ascii_uppercase() - b'A') + 1;
        }
        if c > 16_384 {
            return None;
        }
        Some(c - 1)
    };
    Some((row - 1, col))
}

impl Sink for SheetCells<'_> {
    fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
        let Some(cell) = self.cell.as_mut() else {
            match (t.local, t.closing) {
                (b"row", false) => {
                    if let Some(r) = t.attr(b"r") {
                        self.row_index = self.cell_ref(r)?.0;
                    }
                    if t.self_closing {
                        self.row_index = self.row_index.saturating_add(1);
                        self.col_index = 0;
                    }
                }
                (b"row", true) => {
                    self.row_index = self.row_index.saturating_add(1);
                    self.col_index = 0;
                }
                (b"c", false) => {
                    let pos = match t.attr(b"r") {
                        Some(r) => match self.cell_ref(r)? {
                            (row, Some(col)) => {
                                self.col_index = col;
                                (row, col)
                            }
                            (_, None) => {
                                return Err(SheetError::CellReference {
                                    row: u64::from(self.row_index) + 1,
                                    reference: String::from_utf8_lossy(r).into_owned(),
                                }
                                .into())
                            }
                        },
                        None => (self.row_index, self.col_index),
                    };
                    let scan = CellScan {
                        pos,
                        typ: match t.attr(b"t") {
                            Some(b"s") => CellType::Shared,
                            Some(b"str") => CellType::Str,
                            _ => CellType::Other,
                        },
                        ..CellScan::default()
                    };
                    self.col_index = self.col_index.saturating_add(1);
                    if t.self_closing {
                        self.finish_cell(scan)?;
                    } else {
                        self.cell = Some(scan);
                    }
                }
                _ => {}
            }
            return Ok(());
        };
        match (t.local, t.closing) {
            (b"c", true) => {
                if let Some(done) = self.cell.take() {
                    self.finish_cell(done)?;
                }
            }
            (b"f", false) => cell.formula = true,
            (b"v", false) => {
                cell.value = true;
                cell.in_v = !t.self_closing;
            }
            (b"v", true) => cell.in_v = false,
            (b"is", false) if !t.self_closing => {
                cell.inline = true;
                cell.in_is += 1;
            }
            (b"is", true) => cell.in_is = cell.in_is.saturating_sub(1),
            (b"rPh", false) if !t.self_closing => cell.rph += 1,
            (b"rPh", true) => cell.rph = cell.rph.saturating_sub(1),
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, raw: &[u8], chars: u64) -> Result<(), Halt> {
        let Some(cell) = self.cell.as_mut() else {
            return Ok(());
        };
        let counts = cell.in_v || (cell.in_is > 0 && cell.rph == 0);
        if !counts {
            return Ok(());
        }
        if cell.in_v {
            let k = raw.len().min(cell.v.len() - cell.v_len);
            cell.v[cell.v_len..cell.v_len + k].copy_from_slice(&raw[..k]);
            cell.v_len += k;
        }
        cell.chars += chars;
        let over = cell.chars > self.cell_chars;
        let (row, column) = (u64::from(cell.pos.0) + 1, cell.pos.1 as usize);
        self.add_text(raw.len() as u64)?;
        if over {
            return Err(SheetError::CellCut {
                row,
                column,
                max: self.cell_chars,
            }
            .into());
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ XLSB

/// Longest BIFF12 record an XLSB part may hold: calamine allocates a record's declared
/// length before reading it. A cell record holds at most `max_cell_chars` UTF-16 units.
fn record_max(caps: &Caps) -> u64 {
    (caps.cell_chars * 2 + 1024).max(OTHER_TEXT_MIN)
}

/// XLSB is binary: every part calamine may read is inflated through a record walker that
/// refuses over-long records and counts shared strings (BrtSSTItem records) against the
/// caps. Every worksheet part is checked (telling which one a sheet name points at would
/// mean parsing `xl/workbook.bin`); the budget bounds the time that takes.
fn check_xlsb<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    caps: &Caps,
    budget: &mut Budget,
) -> Result<(), SheetError> {
    let mut parts: Vec<(usize, String, PartCap)> = Vec::new();
    for (path, cap) in [
        ("xl/workbook.bin", Some((WORKBOOK_MAX, "workbook part"))),
        ("xl/styles.bin", Some((STYLES_MAX, "styles part"))),
        ("xl/sharedStrings.bin", None),
    ] {
        if let Some(i) = entry_index(zip, path) {
            parts.push((i, path.to_string(), cap));
        }
    }
    let sheets: Vec<(usize, String)> = zip
        .file_names()
        .filter(|n| {
            n.replace('\\', "/")
                .to_ascii_lowercase()
                .starts_with("xl/worksheets/")
        })
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|n| zip.index_for_name(&n).map(|i| (i, n)))
        .collect();
    parts.extend(sheets.into_iter().map(|(i, n)| (i, n, None)));
    if let Some(index) = entry_index(zip, "xl/_rels/workbook.bin.rels") {
        let part = Part {
            index,
            label: "xl/_rels/workbook.bin.rels",
            cap: Some((RELS_MAX, "relationships")),
        };
        scan_xml(
            zip,
            &part,
            Format::Xlsb,
            caps.other_text,
            budget,
            &mut Plain,
        )?;
    }
    for (index, label, cap) in parts {
        let sst = label.eq_ignore_ascii_case("xl/sharedStrings.bin");
        let mut walker = Records::new(&label, record_max(caps));
        let (mut strings, mut bytes) = (0u64, 0u64);
        let part = Part {
            index,
            label: &label,
            cap,
        };
        let walked = inflate(zip, &part, Format::Xlsb, budget, |chunk| {
            walker
                .feed(chunk, |typ, len| {
                    // BrtSSTItem
                    if sst && typ == 19 {
                        strings += 1;
                        bytes += len;
                        if strings > caps.sst_strings {
                            return Err(SheetError::TooManySharedStrings {
                                max: caps.sst_strings,
                            });
                        }
                        if bytes > caps.sst_bytes.saturating_mul(2) {
                            return Err(SheetError::SharedStringsTooLarge {
                                max: caps.sst_bytes,
                            });
                        }
                    }
                    Ok(())
                })
                .map_err(Halt::Fail)
        });
        match walked {
            Ok(()) | Err(Halt::Done) => {}
            Err(Halt::Fail(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Walks BIFF12 records (a 1–2 byte type and a 1–4 byte length, 7 bits a byte) across
/// chunk borders without holding any record.
struct Records {
    label: String,
    max: u64,
    /// Header bytes of the record being read: (type, type bytes, length, length bytes).
    head: Option<(u32, u8, u64, u8, bool)>,
    /// Payload bytes still to skip.
    skip: u64,
}

impl Records {
    fn new(label: &str, max: u64) -> Records {
        Records {
            label: label.to_string(),
            max,
            head: None,
            skip: 0,
        }
    }

    fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_record: impl FnMut(u32, u64) -> Result<(), SheetError>,
    ) -> Result<(), SheetError> {
        while !chunk.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(chunk.len() as u64);
                self.skip -= k;
                chunk = &chunk[k as usize..];
                continue;
            }
            let b = chunk[0];
            chunk = &chunk[1..];
            // (type, type bytes read, length, length bytes read, type finished)
            let (typ, tn, len, ln, type_done) = self.head.unwrap_or((0, 0, 0, 0, false));
            if !type_done {
                let typ = typ | (u32::from(b & 0x7F) << (7 * u32::from(tn)));
                let done = b & 0x80 == 0 || tn == 1;
                self.head = Some((typ, tn + 1, 0, 0, done));
                continue;
            }
            let len = len | (u64::from(b & 0x7F) << (7 * u64::from(ln)));
            if b & 0x80 != 0 && ln < 3 {
                self.head = Some((typ, tn, len, ln + 1, true));
                continue;
            }
            self.head = None;
            if len > self.max {
                return Err(SheetError::Markup {
                    part: self.label.clone(),
                    what: format!(
                        "a record of {len} bytes, more than the {} accepted",
                        self.max
                    ),
                });
            }
            on_record(typ, len)?;
            self.skip = len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_references() {
        assert_eq!(parse_ref(b"A1"), Some((0, Some(0))));
        assert_eq!(parse_ref(b"b5"), Some((4, Some(1))));
        assert_eq!(parse_ref(b"XFD1048576"), Some((1_048_575, Some(16_383))));
        assert_eq!(parse_ref(b"7"), Some((6, None)));
        for bad in [
            &b"XFE1"[..],
            b"A0",
            b"A1048577",
            b"A99999999999",
            b"",
            b"A",
            b"1A",
            b"AAAA1",
        ] {
            assert_eq!(parse_ref(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_sheet_is_chosen_as_calamine_chooses_and_finds_it() {
        let rels = Rels {
            targets: vec![
                (b"r1".to_vec(), "chartsheets/c1.xml".into()),
                (b"r2".to_vec(), "worksheets/sheet2.xml".into()),
                (b"r3".to_vec(), "/xl/worksheets/sheet1.xml".into()),
                (b"r4".to_vec(), "xl/chartsheets/same.xml".into()),
                (b"r5".to_vec(), "worksheets/same.xml".into()),
            ],
        };
        let sheet = |n: &str, r: &str| (Some(n.to_string()), Some(r.as_bytes().to_vec()));
        let wb = Workbook {
            sheets: vec![
                sheet("Chart", "r1"),
                sheet("Users", "r2"),
                sheet("Data", "r3"),
                sheet("Twin", "r4"),
                sheet("Twin", "r5"),
            ],
        };
        let chosen = |w: Option<&str>| wb.choose(&rels, w);
        assert_eq!(
            chosen(None),
            Some(("Users".into(), "xl/worksheets/sheet2.xml".into()))
        );
        assert_eq!(
            chosen(Some("data")),
            Some(("Data".into(), "xl/worksheets/sheet1.xml".into()))
        );
        assert_eq!(chosen(Some("Chart")), None, "a chartsheet is not read");
        // calamine finds a name's first sheet of any kind: the chartsheet is what it opens
        assert_eq!(
            chosen(Some("Twin")),
            Some(("Twin".into(), "xl/chartsheets/same.xml".into()))
        );
        // a sheet whose relationship is missing: calamine refuses the workbook itself
        let broken = Workbook {
            sheets: vec![sheet("Users", "r9")],
        };
        assert_eq!(broken.choose(&rels, None), None);
    }

    #[test]
    fn biff12_records_across_chunks() {
        // type 19 (1 byte), length 3; type 0x80|1,0x02 (2 bytes), length 200 (2 bytes)
        let mut bytes = vec![19, 3, b'a', b'b', b'c', 0x81, 0x02, 0xC8, 0x01];
        bytes.extend(std::iter::repeat_n(0u8, 200));
        for size in 1..bytes.len() {
            let mut seen = Vec::new();
            let mut r = Records::new("p", 1000);
            for c in bytes.chunks(size) {
                r.feed(c, |t, l| {
                    seen.push((t, l));
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(seen, vec![(19, 3), (0x101, 200)], "chunk {size}");
        }
        let mut r = Records::new("xl/worksheets/sheet1.bin", 100);
        let err = r.feed(&[1, 0xC8, 0x01], |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("record of 200 bytes"), "{err}");
    }
}
