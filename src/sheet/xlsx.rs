//! Workbook readers on top of calamine.
//!
//! XLSX and XLSB are streamed: calamine's `worksheet_cells_reader` runs on a producer
//! thread that sends finished rows through a bounded channel, so memory stays flat however
//! many rows the sheet has. XLS and ODS have no streaming reader in calamine and are
//! loaded whole.
//!
//! Hostile files: a zip-based workbook has been through the pre-pass (`zipguard`) before
//! anything here opens it, so calamine only meets parts whose tokens, tables and cells fit
//! the limits. Here the declared `<dimension>` of a sheet is checked against the row and
//! column limits before any row is read, and every calamine call runs under
//! `catch_unwind`, so a panic on a file the pre-pass could not foresee becomes a
//! rejected-file error.

use super::{panic_message, Cell, Format, Limits, ReadOptions, Row, SheetError};
use calamine::{Data, DataRef, ExcelDateTime, Reader, SheetType};
use std::fs::File;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// Rows buffered between the workbook reader thread and the consumer.
const CHANNEL_ROWS: usize = 256;
/// Bytes of rows the reader thread may be ahead of the consumer (one row always passes).
/// Counting rows alone is not enough: every cell that uses a shared string gets its own
/// copy, so one row can be `max_columns × max_cell_chars` characters (20 MB at the
/// defaults) from a few bytes of XML, and 256 of them would be gigabytes.
const IN_FLIGHT_MAX: usize = 32 * 1024 * 1024;

/// How many bytes of rows are between the reader thread and the consumer, and whether
/// the consumer is still there.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    freed: Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        // A panic while holding this lock cannot leave the counts inconsistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until `bytes` more may be in flight; `false` when the consumer is gone.
    fn acquire(&self, bytes: usize) -> bool {
        let mut st = self.lock();
        while !st.1 && st.0 > 0 && st.0 + bytes > IN_FLIGHT_MAX {
            st = self
                .freed
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if st.1 {
            return false;
        }
        st.0 += bytes;
        true
    }

    fn release(&self, bytes: usize) {
        let mut st = self.lock();
        st.0 = st.0.saturating_sub(bytes);
        self.freed.notify_all();
    }

    fn close(&self) {
        self.lock().1 = true;
        self.freed.notify_all();
    }
}

/// The reader thread's end: rows (or the error that ends them) with their size.
struct RowSender {
    tx: SyncSender<(Result<Row, SheetError>, usize)>,
    gate: Arc<Gate>,
}

impl RowSender {
    /// Sends a row once the consumer has room for it; `false` when the consumer is gone.
    fn send(&self, item: Result<Row, SheetError>) -> bool {
        let bytes = match &item {
            Ok(row) => row_bytes(row),
            Err(_) => 0,
        };
        self.gate.acquire(bytes) && self.tx.send((item, bytes)).is_ok()
    }
}

/// Memory a row takes: its cells and the text they own.
fn row_bytes(row: &Row) -> usize {
    row.cells
        .iter()
        .map(|c| {
            std::mem::size_of::<Cell>()
                + match c {
                    Cell::Text(s) | Cell::DateTime(s) | Cell::Error(s) => s.capacity(),
                    _ => 0,
                }
        })
        .sum()
}

/// The consumer's end, handing back each row's bytes as it takes it.
struct GatedRows {
    rx: Receiver<(Result<Row, SheetError>, usize)>,
    gate: Arc<Gate>,
}

impl Iterator for GatedRows {
    type Item = Result<Row, SheetError>;
    fn next(&mut self) -> Option<Self::Item> {
        let (item, bytes) = self.rx.recv().ok()?;
        self.gate.release(bytes);
        Some(item)
    }
}

impl Drop for GatedRows {
    /// Lets a reader thread waiting for room see that nobody will take its rows.
    fn drop(&mut self) {
        self.gate.close();
    }
}

/// Opens a workbook of a known format and returns its rows (blank rows included).
pub(super) fn open(
    path: &Path,
    format: Format,
    opts: &ReadOptions,
) -> Result<super::RowIter, SheetError> {
    match format {
        Format::Xlsx | Format::Xlsb => Ok(stream(path, format, opts)),
        Format::Xls => load_whole::<calamine::Xls<_>>(path, format, opts),
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

fn stream(path: &Path, format: Format, opts: &ReadOptions) -> super::RowIter {
    let (tx, rx) = sync_channel(CHANNEL_ROWS);
    let gate = Arc::new(Gate::default());
    let tx = RowSender {
        tx,
        gate: Arc::clone(&gate),
    };
    let path = path.to_path_buf();
    let opts = opts.clone();
    let spawned = std::thread::Builder::new()
        .name("teamsync-workbook".into())
        .spawn(move || {
            let result = catch_unwind(AssertUnwindSafe(|| match format {
                Format::Xlsb => xlsb_rows(&path, &opts, &tx),
                _ => xlsx_rows(&path, &opts, &tx),
            }));
            let err = match result {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(p) => SheetError::Panicked(panic_message(p)),
            };
            // The consumer may be gone; nothing more to do then.
            let _ = tx.send(Err(err));
        });
    match spawned {
        Ok(_) => Box::new(GatedRows { rx, gate }),
        Err(e) => Box::new(std::iter::once(Err(SheetError::Io(format!(
            "cannot start the workbook reader thread: {e}"
        ))))),
    }
}

/// Producer side for XLSX: reads cells in file order and sends each finished row.
fn xlsx_rows(path: &Path, opts: &ReadOptions, tx: &RowSender) -> Result<(), SheetError> {
    let file = super::open_regular(path)?;
    let mut wb: calamine::Xlsx<_> =
        calamine::Xlsx::new(BufReader::new(file)).map_err(|e| corrupt(Format::Xlsx)(&e))?;
    let name = pick_sheet(wb.sheets_metadata(), opts.sheet_name.as_deref())?;
    let mut cells = wb
        .worksheet_cells_reader(&name)
        .map_err(|e| corrupt(Format::Xlsx)(&e))?;
    let dims = cells.dimensions();
    pump(
        Format::Xlsx,
        (dims.end.0, dims.end.1),
        || cells.next_cell(),
        &opts.limits,
        tx,
    )
}

/// Producer side for XLSB, the same way.
fn xlsb_rows(path: &Path, opts: &ReadOptions, tx: &RowSender) -> Result<(), SheetError> {
    let file = super::open_regular(path)?;
    let mut wb: calamine::Xlsb<_> =
        calamine::Xlsb::new(BufReader::new(file)).map_err(|e| corrupt(Format::Xlsb)(&e))?;
    let name = pick_sheet(wb.sheets_metadata(), opts.sheet_name.as_deref())?;
    let mut cells = wb
        .worksheet_cells_reader(&name)
        .map_err(|e| corrupt(Format::Xlsb)(&e))?;
    let dims = cells.dimensions();
    pump(
        Format::Xlsb,
        (dims.end.0, dims.end.1),
        || cells.next_cell(),
        &opts.limits,
        tx,
    )
}

/// Turns a stream of cells (in file order) into rows sent to the consumer. Returns early
/// (Ok) when the consumer hung up.
fn pump<'a, E: std::fmt::Display>(
    format: Format,
    declared_end: (u32, u32),
    mut next_cell: impl FnMut() -> Result<Option<calamine::Cell<DataRef<'a>>>, E>,
    limits: &Limits,
    tx: &RowSender,
) -> Result<(), SheetError> {
    check_declared(
        u64::from(declared_end.0) + 1,
        u64::from(declared_end.1) + 1,
        limits,
    )?;
    let mut current: Option<Row> = None;
    let mut last_row = 0u64;
    while let Some(cell) = next_cell().map_err(|e| SheetError::Corrupt {
        format,
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
                if !tx.send(Ok(done)) {
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
            // Cells come left to right within a row, so this is the first column over.
            return Err(super::columns_over(row_no, c, limits));
        }
        if row.cells.len() <= c {
            row.cells.resize(c + 1, Cell::Empty);
        }
        row.cells[c] = value;
    }
    if let Some(done) = current {
        tx.send(Ok(done));
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
        let file = super::open_regular(path)?;
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
    fn the_gate_holds_the_reader_back_by_bytes_and_lets_it_go_when_closed() {
        let gate = Arc::new(Gate::default());
        // one row always passes, however big
        assert!(gate.acquire(IN_FLIGHT_MAX * 2));
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || g.acquire(10));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "a second row waits for room");
        gate.release(IN_FLIGHT_MAX * 2);
        assert!(waiter.join().unwrap());
        gate.release(10);
        // a consumer that went away frees a waiting reader, which then stops
        assert!(gate.acquire(IN_FLIGHT_MAX));
        let g = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || g.acquire(IN_FLIGHT_MAX));
        std::thread::sleep(std::time::Duration::from_millis(50));
        gate.close();
        assert!(!waiter.join().unwrap());
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
