//! CSV reader: the encodings and dialects Excel and LibreOffice actually write.
//!
//! - UTF-8, with or without BOM, is streamed record by record.
//! - UTF-16 LE/BE with BOM is what Excel's "Unicode text" save writes (tab separated); it is
//!   decoded whole (the file is already bounded by `max_file_bytes`).
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

use super::{Cell, Limits, Row, SheetError};
use std::io::{Chain, Cursor, Read};
use std::path::Path;

const PREFIX_BYTES: usize = 64 * 1024;

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
) -> Result<(super::RowIter, Vec<String>), SheetError> {
    let io = |e: std::io::Error| SheetError::Io(e.to_string());
    let mut file = super::open_regular(path)?;
    let mut prefix = vec![0u8; PREFIX_BYTES];
    let n = super::read_up_to(&mut file, &mut prefix).map_err(io)?;
    prefix.truncate(n);
    let mut warnings = Vec::new();

    let (mut prefix, rest): (Vec<u8>, Box<dyn Read + Send>) = if let Some(enc) = utf16_bom(&prefix)
    {
        // Excel "Unicode text": decode the whole file (bounded by max_file_bytes).
        let mut all = prefix;
        file.take(limits.max_file_bytes)
            .read_to_end(&mut all)
            .map_err(io)?;
        let (text, _, had_errors) = enc.decode(&all);
        if had_errors {
            return Err(SheetError::Encoding(format!(
                "file starts with a {} byte order mark but is not valid {}",
                enc.name(),
                enc.name()
            )));
        }
        warnings.push(format!(
            "read as {} text (Excel \"Unicode text\")",
            enc.name()
        ));
        (text.into_owned().into_bytes(), Box::new(std::io::empty()))
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

    let source: Source = BlankLines::new(Cursor::new(prefix).chain(rest));
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
            done: false,
        }),
        warnings,
    ))
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

/// Makes empty lines visible to the csv crate (which skips them) by writing a space on
/// each empty line outside quotes, so that record numbers equal spreadsheet rows.
pub(super) struct BlankLines<R> {
    inner: R,
    in_quotes: bool,
    line_start: bool,
    after_cr: bool,
    out: Vec<u8>,
    pos: usize,
    chunk: Vec<u8>,
}

impl<R: Read> BlankLines<R> {
    pub(super) fn new(inner: R) -> Self {
        BlankLines {
            inner,
            in_quotes: false,
            line_start: true,
            after_cr: false,
            out: Vec::new(),
            pos: 0,
            chunk: vec![0; 16 * 1024],
        }
    }

    fn transform(&mut self, n: usize) {
        self.out.clear();
        self.pos = 0;
        for &b in &self.chunk[..n] {
            if self.in_quotes {
                if b == b'"' {
                    self.in_quotes = false;
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
                }
                _ => {
                    self.line_start = false;
                    self.after_cr = false;
                }
            }
            self.out.push(b);
        }
    }
}

impl<R: Read> Read for BlankLines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.out.len() {
            let n = self.inner.read(&mut self.chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.transform(n);
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
    done: bool,
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
                let row = e.position().map(|_| self.row + 1);
                let message = match e.kind() {
                    csv::ErrorKind::Io(io) => io.to_string(),
                    _ => e.to_string(),
                };
                Some(Err(SheetError::Syntax { row, message }))
            }
            Ok(true) => {
                self.row += 1;
                let mut cells = Vec::with_capacity(self.rec.len());
                for (i, field) in self.rec.iter().enumerate() {
                    match std::str::from_utf8(field) {
                        Ok("") => cells.push(Cell::Empty),
                        Ok(s) => cells.push(Cell::Text(s.to_string())),
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
                }
                Some(Ok(Row {
                    row: self.row,
                    cells,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rows(bytes: &[u8]) -> Result<Vec<Row>, SheetError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        let (it, _) = open(f.path(), &Limits::default())?;
        let all: Vec<Row> = it.collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|r| !r.is_blank()).collect())
    }

    fn texts(r: &Row) -> Vec<String> {
        r.cells.iter().map(|c| c.display()).collect()
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
        BlankLines::new(&b"a\r\n\r\n\"x\n\ny\"\n\nb\r\r"[..])
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

    #[test]
    fn nul_bytes_are_refused() {
        let err = rows(b"u\0p\0n\0").unwrap_err();
        assert!(matches!(err, SheetError::Encoding(_)));
    }
}
