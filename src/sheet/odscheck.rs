//! The ODS half of the workbook pre-pass (see `zipguard`).
//!
//! calamine reads an ODS workbook whole: every table of `content.xml` becomes a dense grid
//! (its data's bounding box, repeats expanded, a copy of the value in every repeated cell)
//! before we see a row, and a `<text:s text:c="N"/>` becomes N spaces. A few bytes can ask
//! for billions of cells or characters, so `content.xml` is scanned first, with repeats
//! counted (at defaults, in parentheses):
//! - data (a cell with a value or formula) beyond `max_rows` / `max_columns` is refused
//!   (LibreOffice's own huge repeats of *empty* rows and cells after the data are fine);
//! - the grid all tables take together, rows × columns from column A: `max_rows` cells
//!   (1,000,000, about 150 MB once loaded);
//! - the text all cells hold once repeats are expanded: `16 × max_rows` bytes (16 MB);
//! - one cell's text, spaces expanded: `max_cell_chars`, named by row and column;
//! - `content.xml` itself: `64 × max_rows` bytes (64 MB), as everything else calamine keeps
//!   (styles, names, one entry per row element) grows with it; `META-INF/manifest.xml`,
//!   which calamine buffers whole: 1 MiB.
//!
//! Larger ODS sheets are refused with the advice to save them as XLSX or CSV, which are
//! streamed.

use super::xmlscan::{text_chars, Halt, Sink, Tag};
use super::zipguard::{scan_xml, Budget, Caps, Part, Plain};
use super::{Format, Limits, SheetError};
use std::io::{Read, Seek};
use zip::ZipArchive;

const MANIFEST_MAX: u64 = 1024 * 1024;

pub(super) fn check<R: Read + Seek>(
    zip: &mut ZipArchive<R>,
    limits: &Limits,
    caps: &Caps,
    budget: &mut Budget,
) -> Result<(), SheetError> {
    // calamine opens these two by their exact names.
    if let Some(index) = zip.index_for_name("META-INF/manifest.xml") {
        let part = Part {
            index,
            label: "META-INF/manifest.xml",
            cap: Some((MANIFEST_MAX, "manifest")),
        };
        scan_xml(zip, &part, Format::Ods, caps.other_text, budget, &mut Plain)?;
    }
    let Some(index) = zip.index_for_name("content.xml") else {
        return Ok(());
    };
    let part = Part {
        index,
        label: "content.xml",
        cap: Some((
            limits.max_rows.saturating_mul(64),
            "content (ODS workbooks are loaded whole; 64 bytes a row of limits.max_rows)",
        )),
    };
    let mut sink = Content::new(limits);
    scan_xml(zip, &part, Format::Ods, caps.other_text, budget, &mut sink)?;
    // a content.xml cut short still had its tables counted as they went
    sink.close_table()
}

/// The data extent of the table being read.
#[derive(Default)]
struct Extent {
    /// First and last data row (0-based, repeats counted).
    rows: Option<(u64, u64)>,
    /// Columns from A up to the last data column.
    width: u64,
}

struct Content {
    max_rows: u64,
    max_columns: u64,
    cell_chars: u64,
    area_max: u64,
    text_max: u64,
    row_elements_max: u64,
    /// Rows of the current table before the current row, repeats counted.
    row_pos: u64,
    row_rep: u64,
    col_pos: u64,
    in_row: bool,
    table: Extent,
    /// Grid cells of the tables already closed.
    area: u64,
    /// Text bytes all cells hold once repeats are expanded.
    text: u64,
    row_elements: u64,
    cell: Option<OdsCell>,
}

struct OdsCell {
    /// 0-based position of the cell's first repeat.
    row: u64,
    col: u64,
    rep: u64,
    data: bool,
    /// The value comes from the element's text (a string cell without `string-value`).
    from_text: bool,
    chars: u64,
    bytes: u64,
    paragraphs: u64,
    annotation: usize,
}

impl Content {
    fn new(limits: &Limits) -> Content {
        Content {
            max_rows: limits.max_rows,
            max_columns: u64::from(limits.max_columns),
            cell_chars: u64::from(limits.max_cell_chars),
            area_max: limits.max_rows,
            text_max: limits.max_rows.saturating_mul(16),
            row_elements_max: limits.max_rows.saturating_mul(2).saturating_add(1024),
            row_pos: 0,
            row_rep: 1,
            col_pos: 0,
            in_row: false,
            table: Extent::default(),
            area: 0,
            text: 0,
            row_elements: 0,
            cell: None,
        }
    }

    fn close_table(&mut self) -> Result<(), SheetError> {
        let t = std::mem::take(&mut self.table);
        if let Some((first, last)) = t.rows {
            let cells = (last - first + 1).saturating_mul(t.width);
            self.area = self.area.saturating_add(cells);
            self.check_area()?;
        }
        Ok(())
    }

    fn check_area(&self) -> Result<(), SheetError> {
        self.check_area_of(self.area)
    }

    fn check_area_of(&self, area: u64) -> Result<(), SheetError> {
        if area > self.area_max {
            return Err(SheetError::TooBig(format!(
                "content.xml: the sheets' data spans more than {} cells (rows × columns, \
                 repeats counted); ODS workbooks are loaded whole, so teamsync reads at most \
                 that many (limits.max_rows cells): save the sheet as XLSX or CSV UTF-8, \
                 which are read as a stream",
                self.area_max
            )));
        }
        Ok(())
    }

    fn cell_done(&mut self, c: OdsCell) -> Result<(), SheetError> {
        let chars = c.chars + c.paragraphs.saturating_sub(1);
        if chars > self.cell_chars {
            return Err(SheetError::CellCut {
                row: c.row + 1,
                column: usize::try_from(c.col).unwrap_or(usize::MAX),
                max: self.cell_chars,
            });
        }
        if !c.data {
            return Ok(());
        }
        let end_col = c.col.saturating_add(c.rep);
        if end_col > self.max_columns {
            return Err(SheetError::TooBig(format!(
                "the sheet has data in column {} (repeats counted), beyond the limit of {} \
                 (limits.max_columns)",
                end_col, self.max_columns
            )));
        }
        let last_row = c.row.saturating_add(self.row_rep - 1);
        if last_row >= self.max_rows {
            return Err(SheetError::TooBig(format!(
                "the sheet has data in row {} (repeats counted), beyond the limit of {} \
                 (limits.max_rows)",
                last_row + 1,
                self.max_rows
            )));
        }
        let t = &mut self.table;
        t.rows = Some(match t.rows {
            Some((a, b)) => (a.min(c.row), b.max(last_row)),
            None => (c.row, last_row),
        });
        t.width = t.width.max(end_col);
        // The value is copied into every repeated cell.
        let copies = c.rep.saturating_mul(self.row_rep);
        self.text = self.text.saturating_add(c.bytes.saturating_mul(copies));
        if self.text > self.text_max {
            return Err(SheetError::TooBig(format!(
                "content.xml: the cells hold more than {} bytes of text once repeats are \
                 expanded; ODS workbooks are loaded whole (limit: 16 bytes a row of \
                 limits.max_rows): save the sheet as XLSX or CSV UTF-8",
                self.text_max
            )));
        }
        // The open table's grid so far counts too, so one table cannot grow unchecked.
        if let Some((first, last)) = self.table.rows {
            let open = (last - first + 1).saturating_mul(self.table.width);
            self.check_area_of(self.area.saturating_add(open))?;
        }
        Ok(())
    }
}

impl Sink for Content {
    fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
        if let Some(cell) = self.cell.as_mut() {
            match (t.qname, t.closing) {
                (b"table:table-cell" | b"table:covered-table-cell", true) => {
                    if let Some(c) = self.cell.take() {
                        self.cell_done(c)?;
                    }
                }
                (b"office:annotation", false) if !t.self_closing => cell.annotation += 1,
                (b"office:annotation", true) => cell.annotation = cell.annotation.saturating_sub(1),
                (b"text:p", false) if cell.annotation == 0 => cell.paragraphs += 1,
                (b"text:s", false) if cell.annotation == 0 && cell.from_text => {
                    let n = t.attr_u64(b"text:c").unwrap_or(1);
                    cell.chars = cell.chars.saturating_add(n);
                    cell.bytes = cell.bytes.saturating_add(n);
                    if cell.chars > self.cell_chars {
                        return Err(SheetError::CellCut {
                            row: cell.row + 1,
                            column: usize::try_from(cell.col).unwrap_or(usize::MAX),
                            max: self.cell_chars,
                        }
                        .into());
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        match (t.qname, t.closing) {
            (b"table:table", false) if !t.self_closing => {
                self.row_pos = 0;
                self.table = Extent::default();
            }
            (b"table:table", true) => self.close_table()?,
            (b"table:table-row", false) => {
                self.row_elements += 1;
                if self.row_elements > self.row_elements_max {
                    return Err(SheetError::TooBig(format!(
                        "content.xml has more than {} row elements (limits.max_rows)",
                        self.row_elements_max
                    ))
                    .into());
                }
                self.row_rep = t
                    .attr_u64(b"table:number-rows-repeated")
                    .unwrap_or(1)
                    .max(1);
                self.col_pos = 0;
                self.in_row = !t.self_closing;
                if t.self_closing {
                    self.row_pos = self.row_pos.saturating_add(self.row_rep);
                }
            }
            (b"table:table-row", true) => {
                if self.in_row {
                    self.row_pos = self.row_pos.saturating_add(self.row_rep);
                }
                self.in_row = false;
            }
            (b"table:table-cell" | b"table:covered-table-cell", false) => {
                let rep = t
                    .attr_u64(b"table:number-columns-repeated")
                    .unwrap_or(1)
                    .max(1);
                let attr_len = |name: &[u8]| t.attr(name).map_or(0, |v| v.len() as u64);
                let string_attr = t.attr(b"office:string-value");
                let is_string = t.attr(b"office:value-type") == Some(b"string");
                let data = [
                    &b"office:value-type"[..],
                    b"office:value",
                    b"office:string-value",
                    b"office:date-value",
                    b"office:time-value",
                    b"office:boolean-value",
                    b"table:formula",
                ]
                .iter()
                .any(|a| t.attr(a).is_some());
                let attr_chars = string_attr.map_or(0, text_chars);
                let cell = OdsCell {
                    row: self.row_pos,
                    col: self.col_pos,
                    rep,
                    data,
                    from_text: is_string && string_attr.is_none(),
                    chars: attr_chars,
                    bytes: attr_len(b"office:string-value") + attr_len(b"table:formula"),
                    paragraphs: 0,
                    annotation: 0,
                };
                self.col_pos = self.col_pos.saturating_add(rep);
                if t.self_closing {
                    self.cell_done(cell)?;
                } else {
                    self.cell = Some(cell);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn text(&mut self, raw: &[u8], chars: u64) -> Result<(), Halt> {
        let Some(cell) = self.cell.as_mut() else {
            return Ok(());
        };
        if !cell.from_text || cell.annotation > 0 {
            return Ok(());
        }
        cell.chars = cell.chars.saturating_add(chars);
        cell.bytes = cell.bytes.saturating_add(raw.len() as u64);
        if cell.chars > self.cell_chars {
            return Err(SheetError::CellCut {
                row: cell.row + 1,
                column: usize::try_from(cell.col).unwrap_or(usize::MAX),
                max: self.cell_chars,
            }
            .into());
        }
        Ok(())
    }
}
