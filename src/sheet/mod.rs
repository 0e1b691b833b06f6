//! Sheet readers: turn a CSV / XLSX / XLS / ODS file into rows of typed cells that know
//! where they came from.
//!
//! This layer exists so that everything downstream (header mapping, normalisation,
//! validation) sees one shape whatever the file format, and so that every later message
//! can point at the cell a spreadsheet user has to fix: file, row as the spreadsheet shows
//! it (the header is row 1 when it is the first line), column letter and header name.
//!
//! Choices made here (see also the submodules):
//! - The format is detected from the content, not the extension: a zip holding
//!   `xl/workbook.xml` is XLSX, `xl/workbook.bin` XLSB, `content.xml` ODS; an OLE2 file is
//!   XLS; anything else that is text is read as CSV. A file named `.xlsx`/`.xls`/`.ods` that
//!   is really CSV text is read as CSV **with a warning** (people rename exports); one that is
//!   neither text nor a spreadsheet is refused.
//! - XLSX and XLSB are streamed cell by cell (calamine's `worksheet_cells_reader` on a
//!   producer thread with a bounded channel), so memory stays flat as rows grow. XLS and ODS
//!   have no streaming reader in calamine and are loaded whole.
//! - Before calamine opens a workbook, a pre-pass reads it the way calamine will and
//!   refuses what would take memory or time past the limits: `zipguard` (XLSX, XLSB, ODS:
//!   what is inflated is counted, never what the zip claims; tokens, shared strings and
//!   cells are capped while being read; see also `odscheck`) and `xlscheck` (XLS).
//! - Every calamine call runs under `catch_unwind`: a panic on a hostile file becomes a
//!   rejected-file error, never a crash.
//! - Blank rows (every cell empty or whitespace) are skipped but still counted, so row
//!   numbers match what the user sees. The header is the first non-blank row.

pub mod cell;
mod csv;
pub mod header;
mod odscheck;
mod xlscheck;
mod xlsx;
mod xmlscan;
mod zipguard;

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Caps that keep a hostile or broken file from exhausting memory or time.
/// The lead maps config `[limits]` onto this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest input file accepted, in bytes. A zip-based file (XLSX/ODS) may also not
    /// declare more than 16 times this in uncompressed content (zip-bomb guard).
    pub max_file_bytes: u64,
    /// Most rows (header included, blank rows included) a sheet may have or declare.
    pub max_rows: u64,
    /// Most columns a sheet may have or declare.
    pub max_columns: u32,
    /// Longest cell, in characters. Excel's own cap is 32,767.
    pub max_cell_chars: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 * 1024 * 1024,
            max_rows: 1_048_576,
            max_columns: 256,
            max_cell_chars: 32_767,
        }
    }
}

/// How much bigger than the file its zip entries may claim to be once inflated.
pub const MAX_ZIP_RATIO: u64 = 16;

/// One cell value, typed as the file stores it, so number normalisation can tell an Excel
/// numeric cell (exact digits) from text that Excel already damaged.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Int(i64),
    Number(f64),
    Bool(bool),
    /// A date/time cell, rendered as ISO 8601 (`2021-01-01`, `2021-01-01T10:30:00`).
    DateTime(String),
    /// An Excel error value such as `#N/A`.
    Error(String),
}

impl Cell {
    /// True for cells a user would call empty (also whitespace-only text).
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as text, as a user would read it in the sheet.
    pub fn display(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) | Cell::DateTime(s) | Cell::Error(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Number(f) => format_f64(*f),
            Cell::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        }
    }

    /// Characters in the cell's text (for the cell-length cap).
    fn char_len(&self) -> usize {
        match self {
            Cell::Text(s) | Cell::DateTime(s) | Cell::Error(s) => s.chars().count(),
            _ => 0,
        }
    }
}

/// Renders a float the way a spreadsheet shows a general-format number: integers without
/// a fraction.
pub fn format_f64(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// A non-blank row with its spreadsheet row number (1-based; header = row 1 when first).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub row: u64,
    /// Cells by 0-based column index (A = 0). May be shorter or longer than the header.
    pub cells: Vec<Cell>,
}

impl Row {
    fn is_blank(&self) -> bool {
        self.cells.iter().all(Cell::is_blank)
    }
}

/// Text from a sheet (or a tenant) made safe to show on a terminal: control characters
/// (C0, DEL, C1), the bidirectional-formatting characters and the Unicode line separators
/// are written as Rust writes them in `{:?}` (`\u{202e}`). A name could otherwise move the
/// cursor or recolour the screen (ESC sequences), or reverse what follows it: U+202E shows
/// `Alice \u{202e}gpj.exe` as "Alice exe.jpg". Only the display changes: the data is kept
/// and sent as it is, and JSON output carries the characters untouched. A backslash is not
/// doubled, so a literal `\u{7}` typed in a cell looks the same as an escaped BEL.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{061C}'
                    | '\u{200E}'
                    | '\u{200F}'
                    | '\u{202A}'..='\u{202E}'
                    | '\u{2066}'..='\u{2069}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
    }
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Spreadsheet column letter for a 0-based index: 0 → `A`, 25 → `Z`, 26 → `AA`.
pub fn column_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// What was detected from the file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "CSV",
            Format::Xlsx => "XLSX",
            Format::Xlsb => "XLSB",
            Format::Xls => "XLS",
            Format::Ods => "ODS",
        })
    }
}

/// Why a file (or part of it) cannot be read. `row`/`column` locate the problem when it is
/// inside the sheet; otherwise the whole file is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    #[error("cannot read file: {0}")]
    Io(String),
    #[error("is {kind}, not a regular file: give the path of a saved sheet")]
    NotRegularFile { kind: &'static str },
    #[error("file is {size} bytes, more than the limit of {max} bytes (limits.max_file_mb)")]
    FileTooLarge { size: u64, max: u64 },
    #[error("{0}")]
    Encoding(String),
    #[error(
        "byte 0x{byte:02X} is not valid UTF-8; the file looks like Latin-1/Windows-1252. \
         teamsync does not guess legacy code pages: save it as \"CSV UTF-8\" (Excel) or \
         \"Unicode (UTF-8)\" (LibreOffice)"
    )]
    NotUtf8 { row: u64, column: usize, byte: u8 },
    #[error("not a spreadsheet: {0}")]
    NotASpreadsheet(String),
    #[error("unsupported {format} content: {0}", format = Format::Xlsx)]
    Unsupported(String),
    #[error("corrupt {format} file: {message}")]
    Corrupt { format: Format, message: String },
    #[error("no sheet named {name:?}; the workbook has: {available}")]
    SheetNotFound { name: String, available: String },
    #[error("the workbook has no sheets")]
    NoSheets,
    #[error("{0}")]
    TooBig(String),
    #[error("cell is {len} characters long, more than the limit of {max} (limits.max_cell_chars)")]
    CellTooLong {
        row: u64,
        column: usize,
        len: usize,
        max: u32,
    },
    /// A cell stopped while it was being read, its full length unknown.
    #[error(
        "cell is longer than {max} characters (limits.max_cell_chars); it was not read past that"
    )]
    CellCut { row: u64, column: usize, max: u64 },
    #[error("CSV syntax error: {message}")]
    Syntax { row: Option<u64>, message: String },
    #[error("the spreadsheet library crashed on this file ({0}); the file is rejected")]
    Panicked(String),
    #[error("{0}: a crafted or damaged workbook, refused before reading it")]
    ZipDirectory(String),
    #[error(
        "{part} inflates to more than {budget} bytes, the zip-bomb budget (16 times \
         limits.max_file_mb): the workbook is refused, nothing past that point was read"
    )]
    Inflated { part: String, budget: u64 },
    #[error(
        "{part} inflates to more than {max} bytes, the most teamsync reads of a workbook's \
         {what}: the workbook is refused"
    )]
    PartTooBig {
        part: String,
        max: u64,
        what: &'static str,
    },
    #[error("{part} holds {what}: a crafted or damaged workbook, refused")]
    Markup { part: String, what: String },
    #[error(
        "the shared-strings table holds more than {max} strings (2 a row of limits.max_rows); \
         it is held in memory whole, so the workbook is refused: save the sheet as CSV UTF-8, \
         which is read as a stream"
    )]
    TooManySharedStrings { max: u64 },
    #[error(
        "the shared-strings table holds more than {max} bytes of text (64 a row of \
         limits.max_rows); it is held in memory whole, so the workbook is refused: save the \
         sheet as CSV UTF-8, which is read as a stream"
    )]
    SharedStringsTooLarge { max: u64 },
    #[error(
        "xl/sharedStrings.xml: shared string #{index} is longer than {max} characters \
         (limits.max_cell_chars); it was not read past that"
    )]
    SharedStringTooLong { index: u64, max: u64 },
    #[error(
        "cell holds a formula without a saved value{}: the program that wrote the workbook \
         did not calculate it, and reading it as empty would silently keep the tenant's \
         value. Open and save the workbook in Excel (or LibreOffice), or copy the column and \
         paste it as values",
        match more {
            0 => String::new(),
            1 => " (and 1 more cell like it)".to_string(),
            n => format!(" (and {n} more cells like it)"),
        }
    )]
    FormulaWithoutValue { row: u64, column: usize, more: u64 },
    #[error(
        "cell refers to shared string #{index}, but the table holds {count}: a damaged workbook"
    )]
    SharedStringIndex {
        row: u64,
        column: usize,
        index: u64,
        count: u64,
    },
    #[error(
        "cell reference {reference:?} is not a cell of Excel's grid (A1 to XFD1048576): a \
         damaged workbook"
    )]
    CellReference { row: u64, reference: String },
}

impl SheetError {
    /// Row (1-based, as the spreadsheet shows it) the error is about, if any.
    pub fn row(&self) -> Option<u64> {
        match self {
            SheetError::CellTooLong { row, .. }
            | SheetError::NotUtf8 { row, .. }
            | SheetError::CellCut { row, .. }
            | SheetError::FormulaWithoutValue { row, .. }
            | SheetError::SharedStringIndex { row, .. }
            | SheetError::CellReference { row, .. } => Some(*row),
            SheetError::Syntax { row, .. } => *row,
            _ => None,
        }
    }
    /// 0-based column the error is about, if any.
    pub fn column(&self) -> Option<usize> {
        match self {
            SheetError::CellTooLong { column, .. }
            | SheetError::NotUtf8 { column, .. }
            | SheetError::CellCut { column, .. }
            | SheetError::FormulaWithoutValue { column, .. }
            | SheetError::SharedStringIndex { column, .. } => Some(*column),
            _ => None,
        }
    }
}

/// Options for reading one file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Which worksheet of a workbook; the first one when `None`. Ignored for CSV.
    pub sheet_name: Option<String>,
    pub limits: Limits,
}

type RowIter = Box<dyn Iterator<Item = Result<Row, SheetError>> + Send>;

/// Rows given back to a CSV reader to be refilled (see [`SheetReader::recycle`]).
type Spares = std::sync::Arc<std::sync::Mutex<Vec<Row>>>;

/// Most rows a reader keeps for refilling: two validation batches' worth per core is
/// far below this; past it, given-back rows are freed.
const SPARES_MAX: usize = 32 * 1024;

/// An open sheet: its header row, then its non-blank data rows in order.
pub struct SheetReader {
    format: Format,
    header: Option<Row>,
    rows: RowIter,
    /// A CSV reader's rows to refill; none for workbooks, whose rows come whole.
    spares: Option<Spares>,
    warnings: Vec<String>,
    limits: Limits,
    failed: bool,
}

impl fmt::Debug for SheetReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SheetReader")
            .field("format", &self.format)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl SheetReader {
    /// Opens a file, detects its format and reads up to its header row.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<SheetReader, SheetError> {
        let limits = opts.limits.clone();
        let mut file = open_regular(path)?;
        let size = file
            .metadata()
            .map_err(|e| SheetError::Io(e.to_string()))?
            .len();
        if size > limits.max_file_bytes {
            return Err(SheetError::FileTooLarge {
                size,
                max: limits.max_file_bytes,
            });
        }
        let mut head = [0u8; 8];
        let n = read_up_to(&mut file, &mut head).map_err(|e| SheetError::Io(e.to_string()))?;
        drop(file);
        let head = &head[..n];
        let mut warnings = Vec::new();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let named = format_of_extension(&ext);

        let mut spares = None;
        let (format, rows): (Format, RowIter) = if head.starts_with(b"PK\x03\x04") {
            let format = zipguard::inspect(path, opts)?;
            (format, xlsx::open(path, format, opts)?)
        } else if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            xlscheck::check(path, &limits)?;
            (Format::Xls, xlsx::open(path, Format::Xls, opts)?)
        } else {
            if named.is_some_and(|f| f != Format::Csv) && !csv::looks_like_text(path)? {
                return Err(SheetError::NotASpreadsheet(format!(
                    "named .{ext} but it is neither a zip-based workbook nor an OLE2 \
                     (XLS) file, nor text"
                )));
            }
            let pool = Spares::default();
            let (rows, mut w) = csv::open(path, &limits, std::sync::Arc::clone(&pool))?;
            spares = Some(pool);
            warnings.append(&mut w);
            (Format::Csv, rows)
        };
        if let Some(claimed) = named.filter(|f| *f != format) {
            warnings.insert(
                0,
                format!(
                    "named .{ext}, which is {}, but it holds {}; read as {format}",
                    claimed.described(),
                    format.described()
                ),
            );
        }

        let mut reader = SheetReader {
            format,
            header: None,
            rows,
            spares,
            warnings,
            limits,
            failed: false,
        };
        // The header is the first non-blank row; an error before it fails the open.
        if let Some(first) = reader.next() {
            let mut header = first?;
            // Trailing empty header cells (a row of separators) are not columns.
            while header.cells.last().is_some_and(Cell::is_blank) {
                header.cells.pop();
            }
            if header.cells.len() > reader.limits.max_columns as usize {
                return Err(SheetError::TooBig(format!(
                    "header has {} columns, more than the limit of {} (limits.max_columns)",
                    header.cells.len(),
                    reader.limits.max_columns
                )));
            }
            reader.header = Some(header);
        }
        Ok(reader)
    }

    pub fn format(&self) -> Format {
        self.format
    }
    /// The header row; `None` for a file with no non-blank row at all.
    pub fn header(&self) -> Option<&Row> {
        self.header.as_ref()
    }
    /// Notes about how the file was read (e.g. renamed CSV).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl SheetReader {
    /// Gives read rows back (emptying `rows`): a CSV reader refills them, reusing their
    /// cells' memory, instead of allocating a string per cell. Validation reads on several
    /// threads, and there an allocation per cell was most of what reading cost.
    pub fn recycle(&mut self, rows: &mut Vec<Row>) {
        if let Some(pool) = &self.spares {
            let mut pool = pool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let room = SPARES_MAX.saturating_sub(pool.len()).min(rows.len());
            pool.extend(rows.drain(..room));
        }
        rows.clear();
    }
}

impl Iterator for SheetReader {
    type Item = Result<Row, SheetError>;

    /// Next non-blank row. After an error the iterator ends: a file is not read past
    /// the point where it stopped making sense.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            match self.rows.next()? {
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Ok(row) => {
                    if row.row > self.limits.max_rows {
                        self.failed = true;
                        return Some(Err(SheetError::TooBig(format!(
                            "more than {} rows (limits.max_rows)",
                            self.limits.max_rows
                        ))));
                    }
                    if let Some(e) = check_row(&row, &self.limits) {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    if row.is_blank() {
                        continue;
                    }
                    return Some(Ok(row));
                }
            }
        }
    }
}

/// Column and cell-length caps, applied to every row whatever the format.
fn check_row(row: &Row, limits: &Limits) -> Option<SheetError> {
    let max = limits.max_columns as usize;
    if let Some(first) = row
        .cells
        .iter()
        .skip(max)
        .position(|c| !c.is_blank())
        .map(|i| i + max)
    {
        return Some(columns_over(row.row, first, limits));
    }
    for (i, c) in row.cells.iter().enumerate() {
        let len = c.char_len();
        if len > limits.max_cell_chars as usize {
            return Some(SheetError::CellTooLong {
                row: row.row,
                column: i,
                len,
                max: limits.max_cell_chars,
            });
        }
    }
    None
}

/// The error for a value in a column past `limits.max_columns`, naming the first such
/// column (the one a user has to delete from).
fn columns_over(row: u64, column: usize, limits: &Limits) -> SheetError {
    SheetError::TooBig(format!(
        "row {row} has a value in column {}, beyond the limit of {} columns (limits.max_columns)",
        column_letter(column),
        limits.max_columns
    ))
}

/// The format a file name promises, for the mismatch warning; `None` when the extension
/// promises nothing (no extension, `.dat`, …).
fn format_of_extension(ext: &str) -> Option<Format> {
    Some(match ext {
        "csv" | "tsv" | "tab" | "txt" => Format::Csv,
        "xlsx" | "xlsm" | "xltx" | "xltm" => Format::Xlsx,
        "xls" | "xlt" => Format::Xls,
        "xlsb" => Format::Xlsb,
        "ods" | "ots" => Format::Ods,
        _ => return None,
    })
}

impl Format {
    /// The format in words, for messages that name two of them.
    fn described(self) -> &'static str {
        match self {
            Format::Csv => "CSV text",
            Format::Xlsx => "an XLSX workbook",
            Format::Xlsb => "an XLSB workbook",
            Format::Xls => "an XLS (Excel 97-2003) workbook",
            Format::Ods => "an ODS workbook",
        }
    }
}

/// Opens a sheet for reading, refusing at once anything that is not a regular file: a
/// FIFO would block `open` (and then every read) forever, a device never ends, a
/// directory cannot be read. The type is checked on the path first, then again on the open
/// handle; on Unix the open itself does not block (`O_NONBLOCK`, which changes nothing for
/// a regular file) should the path have been swapped for a FIFO in between.
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File, SheetError> {
    let io = |e: std::io::Error| SheetError::Io(e.to_string());
    let kind = |t: std::fs::FileType| -> Option<&'static str> {
        if t.is_file() {
            return None;
        }
        Some(if t.is_dir() {
            "a directory"
        } else {
            special_kind(t)
        })
    };
    if let Some(kind) = kind(std::fs::metadata(path).map_err(io)?.file_type()) {
        return Err(SheetError::NotRegularFile { kind });
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io)?;
    if let Some(kind) = kind(file.metadata().map_err(io)?.file_type()) {
        return Err(SheetError::NotRegularFile { kind });
    }
    Ok(file)
}

#[cfg(unix)]
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: std::fs::FileType) -> &'static str {
    "not a regular file"
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Message of a caught panic payload.
fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows given back and refilled read exactly as fresh ones: wider and narrower rows
    /// after each other, empty cells where text was and text where cells were empty,
    /// quoted fields, blank lines, padding past the last column.
    #[test]
    fn recycled_rows_read_as_fresh_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        let mut text = String::from("upn,displayName,number,country,groups\n");
        for i in 0..500 {
            let line = match i % 6 {
                0 => format!("u{i}@contoso.com,\"Doe, Jo {i}\",+3225{i:06},BE,\"A;B\""),
                1 => format!("u{i}@contoso.com"),
                2 => format!(",,,,x{i}"),
                3 => String::new(),
                4 => format!("u{i}@contoso.com,,+3225{i:06},,"),
                _ => format!("u{i}@contoso.com,Name {i},,NL,G,,,"),
            };
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        let opts = ReadOptions::default();
        let fresh: Vec<Row> = SheetReader::open(&path, &opts)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for batch in [1, 7, 64] {
            let mut reader = SheetReader::open(&path, &opts).unwrap();
            let (mut seen, mut held) = (Vec::new(), Vec::new());
            while let Some(row) = reader.next() {
                let row = row.unwrap();
                seen.push(format!("{row:?}"));
                held.push(row);
                if held.len() == batch {
                    reader.recycle(&mut held);
                    assert!(held.is_empty());
                }
            }
            let fresh: Vec<String> = fresh.iter().map(|r| format!("{r:?}")).collect();
            assert_eq!(seen, fresh, "batches of {batch}");
        }
    }

    #[test]
    fn column_letters() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }

    #[test]
    fn blank_cells() {
        assert!(Cell::Empty.is_blank());
        assert!(Cell::Text(" \t".into()).is_blank());
        assert!(!Cell::Int(0).is_blank());
        assert!(!Cell::Text("-".into()).is_blank());
    }

    #[test]
    fn terminal_safe_escapes_controls_and_bidi_only() {
        assert!(matches!(
            terminal_safe("Zoë Ñúñez 李"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            terminal_safe("Alice \u{202E}gpj.exe\u{7}\u{1b}[31m\n\u{85}\u{2066}x\u{2069}"),
            "Alice \\u{202e}gpj.exe\\u{7}\\u{1b}[31m\\u{a}\\u{85}\\u{2066}x\\u{2069}"
        );
    }

    #[test]
    fn number_display() {
        assert_eq!(Cell::Number(3225405200.0).display(), "3225405200");
        assert_eq!(Cell::Number(1.5).display(), "1.5");
        assert_eq!(Cell::Bool(true).display(), "TRUE");
    }
}
