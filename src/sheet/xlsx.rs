//! Workbook readers on top of calamine.
//!
//! XLSX is streamed: calamine's `worksheet_cells_reader` runs on a producer thread that
//! sends finished rows through a bounded channel, so memory stays flat however many rows
//! the sheet has (the shared-strings table is still loaded whole by calamine, which the
//! zip-size guard bounds). XLS, XLSB and ODS have no streaming reader in calamine and are
//! loaded whole; the file-size limit bounds them.
//!
//! Hostile files: the declared `<dimension>` of an XLSX sheet is checked against the row and
//! column limits before any row is read, the zip's declared uncompressed size against
//! `max_file_bytes × MAX_ZIP_RATIO`, ODS row/column repeats (which calamine expands into
//! real cells) against the limits before loading, XLSX shared strings against two calamine
//! 0.31 misreads (see [`check_shared_strings`]), and every calamine call runs under `catch_unwind`
//! (calamine indexes its shared-string table with an unchecked index from the file, for
//! one), so a panic becomes a rejected-file error.

use super::{column_letter, panic_message, Cell, Format, Limits, ReadOptions, Row, SheetError};
use calamine::{Data, DataRef, ExcelDateTime, Reader, SheetType};
use std::fs::File;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

/// Rows buffered between the XLSX producer thread and the consumer.
const CHANNEL_ROWS: usize = 256;

/// Tells XLSX, XLSB and ODS apart by the zip's entry names, and refuses zip bombs.
pub(super) fn zip_format(path: &Path, limits: &Limits) -> Result<Format, SheetError> {
    let file = File::open(path).map_err(|e| SheetError::Io(e.to_string()))?;
    let zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| SheetError::Corrupt {
        format: Format::Xlsx,
        message: format!("not a readable zip archive ({e})"),
    })?;
    let mut zip = zip;
    let max = u128::from(limits.max_file_bytes) * u128::from(super::MAX_ZIP_RATIO);
    let mut inflated = 0u128;
    for i in 0..zip.len() {
        // Sizes come from the central directory, also for entries with data descriptors.
        let size = zip
            .by_index_raw(i)
            .map_err(|e| SheetError::Corrupt {
                format: Format::Xlsx,
                message: format!("unreadable zip entry ({e})"),
            })?
            .size();
        inflated += u128::from(size);
    }
    if inflated > max {
        return Err(SheetError::TooBig(format!(
            "the workbook inflates to {inflated} bytes, more than {} times the file-size limit \
             (zip bomb guard, limits.max_file_bytes)",
            super::MAX_ZIP_RATIO
        )));
    }
    if zip.index_for_name("xl/workbook.xml").is_some() {
        if let Ok(entry) = zip.by_name("xl/sharedStrings.xml") {
            check_shared_strings(BufReader::new(entry))?;
        }
    } else if zip.index_for_name("content.xml").is_some() {
        if let Ok(entry) = zip.by_name("content.xml") {
            check_ods_repeats(BufReader::new(entry), limits)?;
        }
    }
    let has = |n: &str| zip.index_for_name(n).is_some();
    if has("xl/workbook.xml") {
        Ok(Format::Xlsx)
    } else if has("xl/workbook.bin") {
        Ok(Format::Xlsb)
    } else if has("content.xml") {
        Ok(Format::Ods)
    } else {
        Err(SheetError::NotASpreadsheet(
            "a zip archive without a workbook (no xl/workbook.xml or content.xml)".into(),
        ))
    }
}

/// One XML tag as the pre-scanners see it: enough to follow structure, nothing more.
struct Tag<'a> {
    /// Local name (namespace prefix dropped).
    local: &'a [u8],
    closing: bool,
    self_closing: bool,
    /// The raw tag text after `<`, for attribute look-ups.
    raw: &'a [u8],
}

impl Tag<'_> {
    /// Value of an attribute given by its qualified name (`table:number-rows-repeated`).
    fn attr(&self, qname: &[u8]) -> Option<&[u8]> {
        let mut from = 0;
        while let Some(pos) = find(&self.raw[from..], qname) {
            let at = from + pos;
            let before_ok = at > 0 && self.raw[at - 1].is_ascii_whitespace();
            let rest = &self.raw[at + qname.len()..];
            if before_ok {
                if let Some(rest) = rest
                    .strip_prefix(b"=\"")
                    .or_else(|| rest.strip_prefix(b"='"))
                {
                    let end = rest.iter().position(|b| *b == b'"' || *b == b'\'')?;
                    return Some(&rest[..end]);
                }
            }
            from = at + qname.len();
        }
        None
    }

    fn attr_u64(&self, qname: &[u8]) -> Option<u64> {
        std::str::from_utf8(self.attr(qname)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Streams the tags of an XML part (bounded memory: one tag at a time; comments,
/// processing instructions and text are skipped), calling `f` for each.
fn scan_tags(
    mut r: impl std::io::BufRead,
    part: &str,
    format: Format,
    mut f: impl FnMut(&Tag<'_>) -> Result<(), SheetError>,
) -> Result<(), SheetError> {
    let io = |e: std::io::Error| SheetError::Corrupt {
        format,
        message: format!("{part}: {e}"),
    };
    let mut skip = Vec::with_capacity(4096);
    let mut tag = Vec::with_capacity(256);
    loop {
        skip.clear();
        if r.read_until(b'<', &mut skip).map_err(io)? == 0 {
            return Ok(());
        }
        tag.clear();
        if r.read_until(b'>', &mut tag).map_err(io)? == 0 {
            return Ok(());
        }
        if tag.first().is_some_and(|b| *b == b'?' || *b == b'!') {
            continue;
        }
        let closing = tag.first() == Some(&b'/');
        let body = if closing { &tag[1..] } else { &tag[..] };
        let name_end = body
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
            .unwrap_or(body.len());
        let name = &body[..name_end];
        let local = match name.iter().position(|b| *b == b':') {
            Some(i) => &name[i + 1..],
            None => name,
        };
        f(&Tag {
            local,
            closing,
            self_closing: tag.ends_with(b"/>"),
            raw: &tag,
        })?;
    }
}

/// Refuses shared-string tables that calamine 0.31 misreads, rather than let it put the
/// wrong text in a cell:
/// - an `<si>` whose text is not a `<t>…</t>` element or rich runs (`<si></si>`, `<si><t/></si>`)
///   is skipped by calamine, so every later shared string shifts by one (or its index runs
///   past the table and it panics);
/// - an `<si>` with plain `<t>` text followed by rich `<r>` runs is truncated to the plain part.
fn check_shared_strings(r: impl std::io::BufRead) -> Result<(), SheetError> {
    let refuse = |index: u64, what: &str| {
        Err(SheetError::Unsupported(format!(
            "shared string #{index} {what}, which the XLSX reader (calamine 0.31) would read \
             wrongly; re-save the workbook from Excel or LibreOffice, or export it as CSV UTF-8"
        )))
    };
    let mut depth = 0usize;
    // (depth of the open <si>, saw a <t> start, saw an <r> start) for the current string.
    let mut si: Option<(usize, bool, bool)> = None;
    let mut index = 0u64;
    scan_tags(r, "xl/sharedStrings.xml", Format::Xlsx, |tag| {
        if tag.closing {
            depth = depth.saturating_sub(1);
            if tag.local == b"si" {
                if let Some((_, t, r)) = si.take() {
                    if !t && !r {
                        return refuse(index, "is empty");
                    }
                    index += 1;
                }
            }
            return Ok(());
        }
        if tag.self_closing {
            if tag.local == b"si" && si.is_none() {
                return refuse(index, "is empty");
            }
            return Ok(());
        }
        depth += 1;
        match (tag.local, si.as_mut()) {
            (b"si", None) => si = Some((depth, false, false)),
            (b"t", Some((d, t, _))) if depth == *d + 1 => *t = true,
            (b"r", Some((d, t, r))) if depth == *d + 1 => {
                if *t {
                    return refuse(index, "mixes plain text and rich-text runs");
                }
                *r = true;
            }
            _ => {}
        }
        Ok(())
    })
}

/// calamine expands ODS repeats (`table:number-rows-repeated`,
/// `table:number-columns-repeated`) into real cells, so a few bytes can ask for billions.
/// LibreOffice writes huge repeats for the empty space after the data, which is harmless;
/// what is refused is data (a cell with a value type) past the row or column limit once
/// repeats are counted.
fn check_ods_repeats(r: impl std::io::BufRead, limits: &Limits) -> Result<(), SheetError> {
    let mut row_pos = 0u64; // rows before the current one, repeats counted
    let mut row_rep = 1u64;
    let mut col_pos = 0u64;
    let mut row_has_value = false;
    let mut in_row = false;
    scan_tags(r, "content.xml", Format::Ods, |tag| {
        match tag.local {
            b"table" if !tag.closing && !tag.self_closing => row_pos = 0,
            b"table-row" if tag.closing => {
                if in_row && row_has_value && row_pos + row_rep > limits.max_rows {
                    return Err(SheetError::TooBig(format!(
                        "the sheet has data in row {} (repeats counted), beyond the limit of {} \
                         (limits.max_rows)",
                        row_pos + row_rep,
                        limits.max_rows
                    )));
                }
                row_pos = row_pos.saturating_add(row_rep);
                in_row = false;
            }
            b"table-row" => {
                row_rep = tag.attr_u64(b"table:number-rows-repeated").unwrap_or(1);
                col_pos = 0;
                row_has_value = false;
                in_row = !tag.self_closing;
                if tag.self_closing {
                    row_pos = row_pos.saturating_add(row_rep);
                }
            }
            b"table-cell" | b"covered-table-cell" if !tag.closing => {
                let rep = tag.attr_u64(b"table:number-columns-repeated").unwrap_or(1);
                let has_value = tag.attr(b"office:value-type").is_some()
                    || tag.attr(b"table:formula").is_some();
                if has_value {
                    row_has_value = true;
                    if col_pos.saturating_add(rep) > u64::from(limits.max_columns) {
                        return Err(SheetError::TooBig(format!(
                            "the sheet has data in column {} (repeats counted), beyond the \
                             limit of {} (limits.max_columns)",
                            col_pos.saturating_add(rep),
                            limits.max_columns
                        )));
                    }
                }
                col_pos = col_pos.saturating_add(rep);
            }
            _ => {}
        }
        Ok(())
    })
}

/// Opens a workbook of a known format and returns its rows (blank rows included).
pub(super) fn open(
    path: &Path,
    format: Format,
    opts: &ReadOptions,
) -> Result<super::RowIter, SheetError> {
    match format {
        Format::Xlsx => Ok(stream_xlsx(path, opts)),
        Format::Xls => load_whole::<calamine::Xls<_>>(path, format, opts),
        Format::Xlsb => load_whole::<calamine::Xlsb<_>>(path, format, opts),
        Format::Ods => load_whole::<calamine::Ods<_>>(path, format, opts),
        Format::Csv => Err(SheetError::NotASpreadsheet("CSV is not a workbook".into())),
    }
}

fn corrupt(format: Format) -> impl Fn(&dyn std::fmt::Display) -> SheetError {
    move |e| SheetError::Corrupt {
        format,
        message: e.to_string(),
    }
}

/// The worksheet to read: the named one, or the first worksheet (chart sheets skipped).
fn pick_sheet(sheets: &[calamine::Sheet], wanted: Option<&str>) -> Result<String, SheetError> {
    let worksheets: Vec<&calamine::Sheet> = sheets
        .iter()
        .filter(|s| s.typ == SheetType::WorkSheet)
        .collect();
    match wanted {
        Some(w) => worksheets
            .iter()
            .find(|s| s.name == w)
            .or_else(|| worksheets.iter().find(|s| s.name.eq_ignore_ascii_case(w)))
            .map(|s| s.name.clone())
            .ok_or_else(|| SheetError::SheetNotFound {
                name: w.to_string(),
                available: worksheets
                    .iter()
                    .map(|s| format!("{:?}", s.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        None => worksheets
            .first()
            .map(|s| s.name.clone())
            .ok_or(SheetError::NoSheets),
    }
}

fn stream_xlsx(path: &Path, opts: &ReadOptions) -> super::RowIter {
    let (tx, rx) = sync_channel::<Result<Row, SheetError>>(CHANNEL_ROWS);
    let path = path.to_path_buf();
    let opts = opts.clone();
    let spawned = std::thread::Builder::new()
        .name("teamsync-xlsx".into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| xlsx_rows(&path, &opts, &tx)));
            let err = match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(p) => SheetError::Panicked(panic_message(p)),
            };
            // The consumer may be gone; nothing more to do then.
            let _ = tx.send(Err(err));
        });
    match spawned {
        Ok(_) => Box::new(rx.into_iter()),
        Err(e) => Box::new(std::iter::once(Err(SheetError::Io(format!(
            "cannot start the XLSX reader thread: {e}"
        ))))),
    }
}

/// Producer side: reads cells in file order and sends each finished row.
/// Returns early (Ok) when the consumer hung up.
fn xlsx_rows(
    path: &Path,
    opts: &ReadOptions,
    tx: &SyncSender<Result<Row, SheetError>>,
) -> Result<(), SheetError> {
    let limits = &opts.limits;
    let file = File::open(path).map_err(|e| SheetError::Io(e.to_string()))?;
    let mut wb: calamine::Xlsx<_> =
        calamine::Xlsx::new(BufReader::new(file)).map_err(|e| corrupt(Format::Xlsx)(&e))?;
    let name = pick_sheet(wb.sheets_metadata(), opts.sheet_name.as_deref())?;
    let mut cells = wb
        .worksheet_cells_reader(&name)
        .map_err(|e| corrupt(Format::Xlsx)(&e))?;
    let dims = cells.dimensions();
    check_declared(u64::from(dims.end.0) + 1, u64::from(dims.end.1) + 1, limits)?;

    let mut current: Option<Row> = None;
    let mut last_row = 0u64;
    while let Some(cell) = cells.next_cell().map_err(|e| SheetError::Corrupt {
        format: Format::Xlsx,
        message: format!("near row {last_row}: {e}"),
    })? {
        let (r, c) = cell.get_position();
        let row_no = u64::from(r) + 1;
        last_row = row_no;
        if row_no > limits.max_rows {
            return Err(SheetError::TooBig(format!(
                "more than {} rows (limits.max_rows)",
                limits.max_rows
            )));
        }
        let value = from_data_ref(cell.get_value());
        if current.as_ref().is_some_and(|cur| cur.row != row_no) {
            if let Some(done) = current.take() {
                if tx.send(Ok(done)).is_err() {
                    return Ok(());
                }
            }
        }
        let row = current.get_or_insert_with(|| Row {
            row: row_no,
            cells: Vec::new(),
        });
        let c = c as usize;
        if c >= limits.max_columns as usize {
            if value.is_blank() {
                continue;
            }
            return Err(SheetError::TooBig(format!(
                "row {row_no} has a value in column {}, beyond the limit of {} columns \
                 (limits.max_columns)",
                column_letter(c),
                limits.max_columns
            )));
        }
        if row.cells.len() <= c {
            row.cells.resize(c + 1, Cell::Empty);
        }
        row.cells[c] = value;
    }
    if let Some(done) = current {
        let _ = tx.send(Ok(done));
    }
    Ok(())
}

fn check_declared(rows: u64, columns: u64, limits: &Limits) -> Result<(), SheetError> {
    if rows > limits.max_rows {
        return Err(SheetError::TooBig(format!(
            "the sheet declares {rows} rows, more than the limit of {} (limits.max_rows)",
            limits.max_rows
        )));
    }
    if columns > u64::from(limits.max_columns) {
        return Err(SheetError::TooBig(format!(
            "the sheet declares {columns} columns, more than the limit of {} \
             (limits.max_columns)",
            limits.max_columns
        )));
    }
    Ok(())
}

fn load_whole<R>(
    path: &Path,
    format: Format,
    opts: &ReadOptions,
) -> Result<super::RowIter, SheetError>
where
    R: Reader<BufReader<File>>,
    R::Error: std::fmt::Display,
{
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<Row>, SheetError> {
        let file = File::open(path).map_err(|e| SheetError::Io(e.to_string()))?;
        let mut wb = R::new(BufReader::new(file)).map_err(|e| corrupt(format)(&e))?;
        let name = pick_sheet(wb.sheets_metadata(), opts.sheet_name.as_deref())?;
        let range = wb.worksheet_range(&name).map_err(|e| corrupt(format)(&e))?;
        let Some((r0, c0)) = range.start() else {
            return Ok(Vec::new());
        };
        let (r1, c1) = range.end().unwrap_or((r0, c0));
        check_declared(u64::from(r1) + 1, u64::from(c1) + 1, &opts.limits)?;
        let lead = vec![Cell::Empty; c0 as usize];
        Ok(range
            .rows()
            .enumerate()
            .map(|(i, cells)| {
                let mut out = lead.clone();
                out.extend(cells.iter().map(from_data));
                Row {
                    row: u64::from(r0) + i as u64 + 1,
                    cells: out,
                }
            })
            .collect())
    }));
    match result {
        Ok(Ok(rows)) => Ok(Box::new(rows.into_iter().map(Ok))),
        Ok(Err(e)) => Err(e),
        Err(p) => Err(SheetError::Panicked(panic_message(p))),
    }
}

fn text(s: &str) -> Cell {
    if s.is_empty() {
        Cell::Empty
    } else {
        Cell::Text(s.to_string())
    }
}

fn from_data_ref(d: &DataRef<'_>) -> Cell {
    match d {
        DataRef::Int(i) => Cell::Int(*i),
        DataRef::Float(f) => Cell::Number(*f),
        DataRef::String(s) => text(s),
        DataRef::SharedString(s) => text(s),
        DataRef::Bool(b) => Cell::Bool(*b),
        DataRef::DateTime(dt) => Cell::DateTime(render_datetime(dt)),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Cell::DateTime(s.clone()),
        DataRef::Error(e) => Cell::Error(e.to_string()),
        DataRef::Empty => Cell::Empty,
    }
}

fn from_data(d: &Data) -> Cell {
    match d {
        Data::Int(i) => Cell::Int(*i),
        Data::Float(f) => Cell::Number(*f),
        Data::String(s) => text(s),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) => Cell::DateTime(render_datetime(dt)),
        Data::DateTimeIso(s) | Data::DurationIso(s) => Cell::DateTime(s.clone()),
        Data::Error(e) => Cell::Error(e.to_string()),
        Data::Empty => Cell::Empty,
    }
}

/// ISO 8601 as a user expects to read it: a date alone when there is no time part, a time
/// alone for time-only values, `[h]:mm:ss` for durations.
pub(super) fn render_datetime(dt: &ExcelDateTime) -> String {
    let v = dt.as_f64();
    if dt.is_duration() {
        let secs = (v * 86_400.0).round() as i64;
        let sign = if secs < 0 { "-" } else { "" };
        let secs = secs.abs();
        return format!(
            "{sign}{}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }
    let (y, mo, d, h, mi, s, ms) = dt.to_ymd_hms_milli();
    let has_time = (h, mi, s, ms) != (0, 0, 0, 0);
    if v.abs() < 1.0 && has_time {
        format!("{h:02}:{mi:02}:{s:02}")
    } else if has_time {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::ExcelDateTimeType;

    #[test]
    fn datetimes_render_as_iso() {
        let d = ExcelDateTime::new(42663.0, ExcelDateTimeType::DateTime, false);
        assert_eq!(render_datetime(&d), "2016-10-20");
        let d = ExcelDateTime::new(45943.5, ExcelDateTimeType::DateTime, false);
        assert_eq!(render_datetime(&d), "2025-10-13T12:00:00");
        let d = ExcelDateTime::new(42735.0, ExcelDateTimeType::DateTime, true);
        assert_eq!(render_datetime(&d), "2021-01-01");
        let d = ExcelDateTime::new(10.6320601851852, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(render_datetime(&d), "255:10:10");
        let d = ExcelDateTime::new(0.25, ExcelDateTimeType::DateTime, false);
        assert_eq!(render_datetime(&d), "06:00:00");
    }

    #[test]
    fn shared_strings_calamine_misreads_are_refused() {
        let ok = br#"<?xml version="1.0"?><sst xmlns="x"><si><t>abc</t></si><si><r><t>a</t></r><r><rPr/><t>b</t></r></si><si><t xml:space="preserve"> </t><rPh sb="0"><t>x</t></rPh></si><x:si><x:t>p</x:t></x:si></sst>"#;
        assert!(check_shared_strings(&ok[..]).is_ok());
        for bad in [
            &br#"<sst><si><t>abc</t></si><si></si></sst>"#[..],
            br#"<sst><si><t>abc</t></si><si/></sst>"#,
            br#"<sst><si><t>abc</t></si><si><t/></si></sst>"#,
            br#"<sst><si><t>tval</t><r><t>rval1</t></r></si></sst>"#,
        ] {
            let e = check_shared_strings(bad).unwrap_err().to_string();
            assert!(e.contains("shared string #1") || e.contains("#0"), "{e}");
        }
    }

    #[test]
    fn ods_repeats_are_capped() {
        let l = Limits {
            max_rows: 100,
            max_columns: 10,
            ..Limits::default()
        };
        let wrap = |rows: &str| {
            format!(
                r#"<office:document-content><office:body><office:spreadsheet><table:table table:name="S">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
            )
        };
        let value =
            r#"<table:table-cell office:value-type="string"><text:p>x</text:p></table:table-cell>"#;
        // LibreOffice's trailing empty space: fine
        let ok = wrap(&format!(
            r#"<table:table-row>{value}<table:table-cell table:number-columns-repeated="1023"/></table:table-row><table:table-row table:number-rows-repeated="1048575"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>"#
        ));
        assert!(check_ods_repeats(ok.as_bytes(), &l).is_ok());
        let many_rows = wrap(&format!(
            r#"<table:table-row table:number-rows-repeated="1000">{value}</table:table-row>"#
        ));
        assert!(check_ods_repeats(many_rows.as_bytes(), &l)
            .unwrap_err()
            .to_string()
            .contains("max_rows"));
        let gap = wrap(&format!(
            r#"<table:table-row>{value}</table:table-row><table:table-row table:number-rows-repeated="500"/><table:table-row>{value}</table:table-row>"#
        ));
        assert!(check_ods_repeats(gap.as_bytes(), &l).is_err());
        let wide = wrap(
            r#"<table:table-row><table:table-cell office:value-type="float" office:value="1" table:number-columns-repeated="1000000"/></table:table-row>"#,
        );
        assert!(check_ods_repeats(wide.as_bytes(), &l)
            .unwrap_err()
            .to_string()
            .contains("max_columns"));
    }

    #[test]
    fn declared_dimensions_are_capped() {
        let l = Limits {
            max_rows: 10,
            max_columns: 5,
            ..Limits::default()
        };
        assert!(check_declared(10, 5, &l).is_ok());
        assert!(check_declared(11, 5, &l).is_err());
        assert!(check_declared(10, 6, &l).is_err());
    }
}
