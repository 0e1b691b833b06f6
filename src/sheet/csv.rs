//! CSV reader: the encodings and dialects Excel and LibreOffice actually write.
//!
//! - UTF-8, with or without BOM, is streamed record by record.
//! - UTF-16 LE/BE with BOM is what Excel's "Unicode text" save writes (tab separated); it is
//!   decoded to UTF-8 as it is read ([`Utf16`]).
//! - Anything else that is not valid UTF-8 (Latin-1, Windows-1252 exports) is **refused**
//!   with the row where it breaks: guessing a legacy code page would silently mangle names,
//!   and re-saving as "CSV UTF-8" in Excel fixes it for good.
//! - The delimiter is detected from the header line, counting `,` `;` and tab outside
//!   quotes (most wins; ties prefer tab, then `;`). Excel's `sep=X` first line is honoured
//!   and not counted as a row, as Excel does.
//! - Quoted fields may hold delimiters, doubled quotes and newlines (CRLF or LF); a record
//!   spanning lines is one spreadsheet row. Blank lines count as rows (Excel shows them) but
//!   yield nothing: the csv crate skips empty lines silently, so [`BlankLines`] turns each
//!   one (outside quotes) into a line holding one space, which reads as a blank record.
//! - The csv crate holds a whole record before handing it out, so the same byte-level pass
//!   also stops a field at `max_cell_chars` characters, a record at [`FIELDS_MAX`] fields
//!   and at the bytes `max_columns` full cells can take, while reading: a 200 MB field or
//!   a line of 200 million commas never reaches memory.

use super::{Cell, Limits, Row, SheetError};
use std::io::{Chain, Cursor, Read};
use std::path::Path;

const PREFIX_BYTES: usize = 64 * 1024;

/// Most fields one record may have, blank ones included: Excel's 16,384 columns (or
/// `max_columns`, if higher). Exports pad rows with separators up to their used range.
const FIELDS_MAX: u64 = 16_384;

/// Why the byte-level pass stopped a record: carried through the csv crate as the payload
/// of an I/O error and turned back into a [`SheetError`] by [`CsvRows`].
#[derive(Debug, Clone)]
enum Stop {
    Cell { row: u64, column: usize, max: u64 },
    Fields { row: u64, max: u64 },
    Record { row: u64, max: u64 },
    Encoding(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Stop {}

impl Stop {
    fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }

    fn into_sheet_error(self) -> SheetError {
        match self {
            Stop::Cell { row, column, max } => SheetError::CellCut { row, column, max },
            Stop::Fields { row, max } => SheetError::TooBig(format!(
                "row {row} has more than {max} fields (Excel has 16,384 columns; \
                 limits.max_columns)"
            )),
            Stop::Record { row, max } => SheetError::TooBig(format!(
                "row {row} is longer than {max} bytes, more than limits.max_columns cells of \
                 limits.max_cell_chars characters can take"
            )),
            Stop::Encoding(m) => SheetError::Encoding(m),
        }
    }

    /// The stop inside an I/O error, if it is one of ours.
    fn from_io(e: &std::io::Error) -> Option<&Stop> {
        e.get_ref()?.downcast_ref::<Stop>()
    }
}

/// What one record may take, from the limits.
#[derive(Clone, Copy)]
struct RecordCaps {
    cell_chars: u64,
    fields: u64,
    bytes: u64,
}

impl RecordCaps {
    fn new(limits: &Limits) -> RecordCaps {
        let columns = u64::from(limits.max_columns);
        let cell_chars = u64::from(limits.max_cell_chars);
        RecordCaps {
            cell_chars,
            fields: FIELDS_MAX.max(columns),
            // every character 4 bytes (or a doubled quote), a separator each, and the
            // blank fields a padded export adds
            bytes: columns
                .saturating_mul(cell_chars.saturating_mul(4).saturating_add(3))
                .saturating_add(FIELDS_MAX * 3),
        }
    }
}

/// True when the first bytes look like text rather than a binary file.
pub(super) fn looks_like_text(path: &Path) -> Result<bool, SheetError> {
    let mut f = super::open_regular(path)?;
    let mut buf = vec![0u8; 8192];
    let n = super::read_up_to(&mut f, &mut buf).map_err(|e| SheetError::Io(e.to_string()))?;
    let buf = &buf[..n];
    if buf.starts_with(&[0xFF, 0xFE]) || buf.starts_with(&[0xFE, 0xFF]) {
        return Ok(true);
    }
    Ok(!buf
        .iter()
        .any(|&b| b == 0 || (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x0C))))
}

type Source = BlankLines<Chain<Cursor<Vec<u8>>, Box<dyn Read + Send>>>;

/// Opens a CSV file; returns its rows and notes about how it was read.
pub(super) fn open(
    path: &Path,
    limits: &Limits,
    spares: super::Spares,
) -> Result<(super::RowIter, Vec<String>), SheetError> {
    let io = |e: std::io::Error| SheetError::Io(e.to_string());
    let mut file = super::open_regular(path)?;
    let mut prefix = vec![0u8; PREFIX_BYTES];
    let n = super::read_up_to(&mut file, &mut prefix).map_err(io)?;
    prefix.truncate(n);
    let mut warnings = Vec::new();

    let (mut prefix, rest): (Vec<u8>, Box<dyn Read + Send>) = if let Some(enc) = utf16_bom(&prefix)
    {
        // Excel "Unicode text": decoded as it is read; the prefix is taken from the decoded
        // text, for the delimiter and the `sep=` hint.
        let mut text = Utf16::new(
            Cursor::new(prefix).chain(file.take(limits.max_file_bytes)),
            enc,
        );
        let mut decoded = vec![0u8; PREFIX_BYTES];
        let n =
            super::read_up_to(&mut text, &mut decoded).map_err(|e| match Stop::from_io(&e) {
                Some(Stop::Encoding(m)) => SheetError::Encoding(m.clone()),
                _ => SheetError::Io(e.to_string()),
            })?;
        decoded.truncate(n);
        warnings.push(format!(
            "read as {} text (Excel \"Unicode text\")",
            enc.name()
        ));
        (decoded, Box::new(text))
    } else {
        if let Some(stripped) = prefix.strip_prefix(b"\xEF\xBB\xBF") {
            prefix = stripped.to_vec();
        }
        if prefix.contains(&0) {
            return Err(SheetError::Encoding(
                "file contains NUL bytes: it is UTF-16 without a byte order mark or a \
                     binary file; save it as \"CSV UTF-8\""
                    .into(),
            ));
        }
        (prefix, Box::new(file.take(limits.max_file_bytes)))
    };

    // Excel's `sep=;` hint line.
    let mut delimiter = None;
    if prefix.len() >= 5 && prefix[..4].eq_ignore_ascii_case(b"sep=") {
        let line_end = prefix
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(prefix.len());
        let line = String::from_utf8_lossy(&prefix[4..line_end]);
        let line = line.trim_end_matches('\r');
        let mut chars = line.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if c.is_ascii() {
                delimiter = Some(c as u8);
                prefix.drain(..(line_end + 1).min(prefix.len()));
            }
        }
    }
    let delimiter = delimiter.unwrap_or_else(|| detect_delimiter(&prefix));

    let caps = RecordCaps::new(limits);
    let source: Source = BlankLines::new(Cursor::new(prefix).chain(rest), delimiter, caps);
    let rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(source);
    Ok((
        Box::new(CsvRows {
            rdr,
            rec: csv::ByteRecord::new(),
            row: 0,
            max_columns: limits.max_columns as usize,
            limits: limits.clone(),
            done: false,
            spares,
        }),
        warnings,
    ))
}

/// UTF-16 (with its byte order mark) decoded to UTF-8 as it is read; invalid UTF-16 is an
/// error, not replacement characters.
struct Utf16<R> {
    inner: R,
    name: &'static str,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    out: Vec<u8>,
    pos: usize,
}

impl<R: Read> Utf16<R> {
    fn new(inner: R, enc: &'static encoding_rs::Encoding) -> Self {
        Utf16 {
            inner,
            name: enc.name(),
            decoder: enc.new_decoder_with_bom_removal(),
            input: vec![0; 16 * 1024],
            start: 0,
            end: 0,
            eof: false,
            out: Vec::with_capacity(48 * 1024),
            pos: 0,
        }
    }
}

impl<R: Read> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.out.len() {
                let k = buf.len().min(self.out.len() - self.pos);
                buf[..k].copy_from_slice(&self.out[self.pos..self.pos + k]);
                self.pos += k;
                return Ok(k);
            }
            if self.eof && self.start == self.end {
                return Ok(0);
            }
            if self.start == self.end {
                let n = self.inner.read(&mut self.input)?;
                self.eof = n == 0;
                self.start = 0;
                self.end = n;
            }
            self.out.resize(48 * 1024, 0);
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.start..self.end],
                &mut self.out,
                self.eof,
            );
            self.start += read;
            self.out.truncate(written);
            self.pos = 0;
            if let encoding_rs::DecoderResult::Malformed(..) = result {
                return Err(Stop::Encoding(format!(
                    "file starts with a {} byte order mark but is not valid {}",
                    self.name, self.name
                ))
                .into_io());
            }
            if self.eof && written == 0 && self.start == self.end {
                return Ok(0);
            }
        }
    }
}

fn utf16_bom(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    if bytes.starts_with(&[0xFF, 0xFE]) {
        Some(encoding_rs::UTF_16LE)
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        Some(encoding_rs::UTF_16BE)
    } else {
        None
    }
}

/// Picks `,`, `;` or tab by counting them in the first record outside quotes.
pub(super) fn detect_delimiter(prefix: &[u8]) -> u8 {
    let (mut comma, mut semi, mut tab) = (0usize, 0usize, 0usize);
    let mut in_quotes = false;
    for &b in prefix {
        match b {
            b'"' => in_quotes = !in_quotes,
            b'\n' | b'\r' if !in_quotes => break,
            b',' if !in_quotes => comma += 1,
            b';' if !in_quotes => semi += 1,
            b'\t' if !in_quotes => tab += 1,
            _ => {}
        }
    }
    if tab > 0 && tab >= semi && tab >= comma {
        b'\t'
    } else if semi > 0 && semi >= comma {
        b';'
    } else {
        b','
    }
}

/// The byte-level pass in front of the csv crate. It makes empty lines visible (the crate
/// skips them) by writing a space on each empty line outside quotes, so that record numbers
/// equal spreadsheet rows; and it counts each field's characters and each record's fields
/// and bytes as they go by, stopping at the caps before the crate has buffered more.
pub(super) struct BlankLines<R> {
    inner: R,
    in_quotes: bool,
    line_start: bool,
    after_cr: bool,
    out: Vec<u8>,
    pos: usize,
    chunk: Vec<u8>,
    delimiter: u8,
    caps: RecordCaps,
    /// The record being read (1-based, blank lines included), its field (0-based), the
    /// field's characters so far (quote marks not counted) and the record's bytes.
    row: u64,
    field: u64,
    field_chars: u64,
    record_bytes: u64,
}

impl<R: Read> BlankLines<R> {
    fn new(inner: R, delimiter: u8, caps: RecordCaps) -> Self {
        BlankLines {
            inner,
            in_quotes: false,
            line_start: true,
            after_cr: false,
            out: Vec::new(),
            pos: 0,
            chunk: vec![0; 16 * 1024],
            delimiter,
            caps,
            row: 1,
            field: 0,
            field_chars: 0,
            record_bytes: 0,
        }
    }

    fn transform(&mut self, n: usize) -> Result<(), Stop> {
        self.out.clear();
        self.pos = 0;
        for i in 0..n {
            let b = self.chunk[i];
            if self.in_quotes {
                if b == b'"' {
                    self.in_quotes = false;
                } else {
                    self.count(b)?;
                }
                self.out.push(b);
                self.line_start = false;
                self.after_cr = false;
                continue;
            }
            match b {
                b'"' => {
                    self.in_quotes = true;
                    self.line_start = false;
                    self.after_cr = false;
                }
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    if self.line_start {
                        self.out.push(b' ');
                    }
                    self.line_start = true;
                    self.after_cr = b == b'\r';
                    self.row += 1;
                    self.field = 0;
                    self.field_chars = 0;
                    self.record_bytes = 0;
                }
                _ => {
                    self.line_start = false;
                    self.after_cr = false;
                    if b == self.delimiter {
                        self.field += 1;
                        self.field_chars = 0;
                        if self.field >= self.caps.fields {
                            return Err(Stop::Fields {
                                row: self.row,
                                max: self.caps.fields,
                            });
                        }
                    } else {
                        self.count(b)?;
                    }
                }
            }
            self.out.push(b);
        }
        Ok(())
    }

    /// Counts a byte of field content (a character per UTF-8 lead byte).
    fn count(&mut self, b: u8) -> Result<(), Stop> {
        self.record_bytes += 1;
        if self.record_bytes > self.caps.bytes {
            return Err(Stop::Record {
                row: self.row,
                max: self.caps.bytes,
            });
        }
        if b & 0xC0 != 0x80 {
            self.field_chars += 1;
            if self.field_chars > self.caps.cell_chars {
                return Err(Stop::Cell {
                    row: self.row,
                    column: usize::try_from(self.field).unwrap_or(usize::MAX),
                    max: self.caps.cell_chars,
                });
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for BlankLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.out.len() {
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.transform(n).map_err(Stop::into_io)?;
        }
        let k = buf.len().min(self.out.len() - self.pos);
        buf[..k].copy_from_slice(&self.out[self.pos..self.pos + k]);
        self.pos += k;
        Ok(k)
    }
}

struct CsvRows {
    rdr: csv::Reader<Source>,
    rec: csv::ByteRecord,
    /// Spreadsheet row of the last record returned (blank lines included).
    row: u64,
    max_columns: usize,
    limits: Limits,
    done: bool,
    /// Rows given back, refilled in place of new ones.
    spares: super::Spares,
}

impl Iterator for CsvRows {
    type Item = Result<Row, SheetError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rdr.read_byte_record(&mut self.rec) {
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                if let csv::ErrorKind::Io(io) = e.kind() {
                    if let Some(stop) = Stop::from_io(io) {
                        return Some(Err(stop.clone().into_sheet_error()));
                    }
                }
                let row = e.position().map(|_| self.row + 1);
                let message = match e.kind() {
                    csv::ErrorKind::Io(io) => io.to_string(),
                    _ => e.to_string(),
                };
                Some(Err(SheetError::Syntax { row, message }))
            }
            Ok(true) => {
                self.row += 1;
                // A given-back row's cells are overwritten: their strings keep their memory.
                let spare = self
                    .spares
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop();
                let mut cells = spare.map_or_else(
                    || Vec::with_capacity(self.rec.len().min(self.max_columns)),
                    |r| r.cells,
                );
                let mut kept = 0;
                for (i, field) in self.rec.iter().enumerate() {
                    // Past the column limit only blank fields (an export's padding) are
                    // fine; they are not kept.
                    if i >= self.max_columns {
                        if field.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        self.done = true;
                        return Some(Err(super::columns_over(self.row, i, &self.limits)));
                    }
                    match std::str::from_utf8(field) {
                        Ok("") => put(&mut cells, kept, Cell::Empty),
                        Ok(s) => match cells.get_mut(kept) {
                            Some(Cell::Text(t)) => {
                                t.clear();
                                t.push_str(s);
                            }
                            _ => put(&mut cells, kept, Cell::Text(s.to_string())),
                        },
                        Err(e) => {
                            self.done = true;
                            let bad = field.get(e.valid_up_to()).copied().unwrap_or(0);
                            return Some(Err(SheetError::NotUtf8 {
                                row: self.row,
                                column: i,
                                byte: bad,
                            }));
                        }
                    }
                    kept += 1;
                }
                cells.truncate(kept);
                Some(Ok(Row {
                    row: self.row,
                    cells,
                }))
            }
        }
    }
}

/// Sets cell `i` of a row being filled: overwrites a given-back row's cell, or appends.
fn put(cells: &mut Vec<Cell>, i: usize, cell: Cell) {
    match cells.get_mut(i) {
        Some(c) => *c = cell,
        None => cells.push(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rows(bytes: &[u8]) -> Result<Vec<Row>, SheetError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let (it, _) = open(
            f.path(),
            &Limits::default(),
            super::super::Spares::default(),
        )?;
        let all: Vec<Row> = it.collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|r| !r.is_blank()).collect())
    }

    fn texts(r: &Row) -> Vec<String> {
        r.cells.iter().map(super::super::Cell::display).collect()
    }

    #[test]
    fn delimiter_detection_ignores_quoted_separators() {
        assert_eq!(detect_delimiter(b"a,b,c\n1;2;3;4;5"), b',');
        assert_eq!(detect_delimiter(b"\"a;b;c\",d,e\n"), b',');
        assert_eq!(detect_delimiter(b"a;b,c;d\n"), b';');
        assert_eq!(detect_delimiter(b"a\tb\tc\r\n"), b'\t');
        assert_eq!(detect_delimiter(b"single\n"), b',');
    }

    #[test]
    fn rows_count_blank_lines_and_multiline_records() {
        let r = rows(b"upn,name\r\na@x.com,\"two\r\nlines\"\r\n\r\nb@x.com,B\r\n").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].row, 1);
        assert_eq!(r[1].row, 2);
        assert_eq!(texts(&r[1]), vec!["a@x.com", "two\r\nlines"]);
        // blank line is row 3, so b@x.com is row 4 as Excel would show it
        assert_eq!(r[2].row, 4);
    }

    #[test]
    fn blank_line_marker() {
        let mut out = String::new();
        BlankLines::new(
            &b"a\r\n\r\n\"x\n\ny\"\n\nb\r\r"[..],
            b',',
            RecordCaps::new(&Limits::default()),
        )
        .read_to_string(&mut out)
        .unwrap();
        assert_eq!(out, "a\r\n \r\n\"x\n\ny\"\n \nb\r \r");
    }

    #[test]
    fn bom_and_sep_hint() {
        let r = rows(b"\xEF\xBB\xBFupn;name\n").unwrap();
        assert_eq!(texts(&r[0]), vec!["upn", "name"]);
        let r = rows(b"sep=|\nupn|name\na|b\n").unwrap();
        assert_eq!(texts(&r[0]), vec!["upn", "name"]);
        assert_eq!(r[0].row, 1);
        assert_eq!(r[1].row, 2);
    }

    #[test]
    fn utf16_le_and_be() {
        for enc in ["le", "be"] {
            let text = "upn\tname\r\nj\u{e9}r\u{f4}me@x.com\tJ\u{e9}r\u{f4}me\r\n";
            let mut bytes = if enc == "le" {
                vec![0xFF, 0xFE]
            } else {
                vec![0xFE, 0xFF]
            };
            for u in text.encode_utf16() {
                let b = if enc == "le" {
                    u.to_le_bytes()
                } else {
                    u.to_be_bytes()
                };
                bytes.extend_from_slice(&b);
            }
            let r = rows(&bytes).unwrap();
            assert_eq!(
                texts(&r[1]),
                vec!["j\u{e9}r\u{f4}me@x.com", "J\u{e9}r\u{f4}me"]
            );
        }
    }

    #[test]
    fn latin1_is_refused_with_row() {
        let err = rows(b"upn,name\na@x.com,Ren\xE9\n").unwrap_err();
        assert_eq!((err.row(), err.column()), (Some(2), Some(1)));
        assert!(err.to_string().contains("0xE9"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = rows(&bytes);
        }

        #[test]
        fn csv_like_text_reads_with_consistent_rows(text in "[a-c,;\t\"\r\n ]{0,200}") {
            if let Ok(r) = rows(text.as_bytes()) {
                for w in r.windows(2) {
                    proptest::prop_assert!(w[0].row < w[1].row);
                }
            }
        }
    }

    fn rows_with(bytes: &[u8], limits: &Limits) -> Result<Vec<Row>, SheetError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let (it, _) = open(f.path(), limits, super::super::Spares::default())?;
        it.collect()
    }

    #[test]
    fn a_field_is_stopped_at_the_cell_limit_while_it_is_read() {
        let small = Limits {
            max_cell_chars: 1000,
            ..Limits::default()
        };
        let long = "é".repeat(200_000);
        // blank lines and a quoted field spanning lines before it: rows as Excel shows them
        for (text, row, column) in [
            (format!("upn,name\n\na,\"x\ny\"\nb,{long}\n"), 4, 1),
            (format!("upn;name\r\nb;\"{long}\"\r\n"), 2, 1),
            (format!("{long},x\n"), 1, 0),
        ] {
            let err = rows_with(text.as_bytes(), &small).unwrap_err();
            assert_eq!(
                err,
                SheetError::CellCut {
                    row,
                    column,
                    max: 1000
                },
                "{}",
                &text[..20]
            );
        }
        // exactly at the limit is read (and the exact check after reading still applies)
        let ok = format!("upn,name\nb,{}\n", "é".repeat(1000));
        assert_eq!(rows_with(ok.as_bytes(), &small).unwrap().len(), 2);
    }

    #[test]
    fn records_are_stopped_at_their_field_and_byte_caps() {
        let commas = format!("upn,name\na{}\n", ",".repeat(1_000_000));
        let err = rows_with(commas.as_bytes(), &Limits::default()).unwrap_err();
        assert!(
            err.to_string().contains("row 2 has more than 16384 fields"),
            "{err}"
        );
        let narrow = Limits {
            max_columns: 2,
            max_cell_chars: 10,
            ..Limits::default()
        };
        let caps = RecordCaps::new(&narrow);
        let fields = "0123456789,".repeat(caps.bytes as usize / 10 + 10);
        let err = rows_with(format!("upn\n{fields}\n").as_bytes(), &narrow).unwrap_err();
        assert!(err.to_string().contains("row 2 is longer than"), "{err}");
        // blank padding past the column limit is dropped; a value there names its column
        let padded = rows_with(b"upn,name\na,b,,, , \n", &narrow).unwrap();
        assert_eq!(padded[1].cells.len(), 2);
        let err = rows_with(b"upn,name\na,b,,x,,y\n", &narrow).unwrap_err();
        assert!(err.to_string().contains("value in column D"), "{err}");
    }

    #[test]
    fn invalid_utf16_is_refused_while_streaming() {
        let mut bytes = vec![0xFF, 0xFE];
        for u in "upn\tname\r\na\t".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        bytes.extend_from_slice(&0xD800u16.to_le_bytes()); // a lone surrogate
        bytes.extend_from_slice(&u16::from(b'x').to_le_bytes());
        let err = rows(&bytes).unwrap_err();
        assert!(matches!(err, SheetError::Encoding(_)), "{err:?}");
        // a long valid file streams through the decoder across its buffers
        let mut big = vec![0xFF, 0xFE];
        let mut text = String::from("upn\tname\r\n");
        for i in 0..5000 {
            text.push_str(&format!("u{i}@x.com\tJérôme {i}\r\n"));
        }
        for u in text.encode_utf16() {
            big.extend_from_slice(&u.to_le_bytes());
        }
        let r = rows(&big).unwrap();
        assert_eq!(r.len(), 5001);
        assert_eq!(texts(&r[5000]), vec!["u4999@x.com", "Jérôme 4999"]);
    }

    #[test]
    fn nul_bytes_are_refused() {
        let err = rows(b"u\0p\0n\0").unwrap_err();
        assert!(matches!(err, SheetError::Encoding(_)));
    }
}
