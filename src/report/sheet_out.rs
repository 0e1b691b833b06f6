//! Writes user sheets (tenant export, retry sheets) in the input format, so what we write
//! reads back through `validate` unchanged.
//!
//! CSV cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
//! a tab or a carriage return) get a leading apostrophe, except a cell that is exactly a
//! valid E.164 number or exactly `-` (both meaningful to our reader). The sheet reader
//! strips one leading apostrophe from every cell, so the round trip is exact.

use crate::model::E164;
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SheetOutError {
    #[error("cannot write {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing to stdout failed: a reader that went away (`… | head`) is not an error to
    /// the CLI, which finds the broken pipe in this error's source.
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    #[error("cannot build the XLSX workbook")]
    Xlsx(#[source] rust_xlsxwriter::XlsxError),
}

/// Neutralises one CSV cell against formula injection (see module doc).
pub fn neutralise(cell: &str) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if !risky || cell == "-" || (cell.starts_with('+') && E164::parse_canonical(cell).is_ok()) {
        // An apostrophe we did not add would be stripped on reading: double it up.
        if cell.starts_with('\'') {
            return format!("'{cell}");
        }
        return cell.to_string();
    }
    format!("'{cell}")
}

/// Header + rows as CSV bytes (UTF-8, comma, CRLF-free), cells neutralised.
pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = w.write_record(header);
    for r in rows {
        let _ = w.write_record(r.iter().map(|c| neutralise(c)));
    }
    w.into_inner().unwrap_or_default()
}

/// Header + rows as an XLSX workbook. Cells are written as text (an XLSX cell never runs
/// as a formula unless written as one), so phone numbers keep their `+`.
pub fn to_xlsx(header: &[&str], rows: &[Vec<String>]) -> Result<Vec<u8>, SheetOutError> {
    let err = SheetOutError::Xlsx;
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (c, h) in header.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold)
            .map_err(err)?;
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                ws.write_string((r + 1) as u32, c as u16, v).map_err(err)?;
            }
        }
    }
    wb.save_to_buffer().map_err(err)
}

/// Writes bytes to `path` (see [`crate::files::write_private`]), or stdout when `None`.
pub fn write_out(path: Option<&Path>, bytes: &[u8]) -> Result<(), SheetOutError> {
    if let Some(p) = path {
        crate::files::write_private(p, bytes).map_err(|source| SheetOutError::Write {
            path: p.display().to_string(),
            source,
        })
    } else {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(SheetOutError::Stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_but_numbers_and_dash_are_not() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("-2+3"), "'-2+3");
        assert_eq!(neutralise("+1-555"), "'+1-555");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("+3225405200"), "+3225405200");
        assert_eq!(neutralise("-"), "-");
        assert_eq!(neutralise("Alice"), "Alice");
        assert_eq!(neutralise("'quoted"), "''quoted");
    }

    #[test]
    fn csv_round_trip_shape() {
        let out = to_csv(
            &["upn", "displayName"],
            &[vec!["a@b.com".into(), "=1+1".into()]],
        );
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "upn,displayName\na@b.com,'=1+1\n");
    }
}
