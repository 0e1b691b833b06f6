//! Library-level end-to-end tests of the sheet half: files on disk → `validate_files`.
//!
//! Fixtures live in tests/fixtures/sheets (see tests/fixtures/SOURCES.md); XLSX files of our
//! own user-sheet format are written here with rust_xlsxwriter, and big or hostile files are
//! generated into a tempdir rather than committed.

use rust_xlsxwriter::{Format, Formula, Workbook};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use teamsync::model::{AccountType, Field, JobKind, RowAction};
use teamsync::sheet::{Cell, Limits, ReadOptions, SheetError, SheetReader};
use teamsync::template::{TemplateError, TemplateSet};
use teamsync::validate::{validate_files, SheetOptions, Validated};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/sheets").join(name)
}
fn templates() -> TemplateSet {
    TemplateSet::load_dir(&root().join("templates")).expect("shipped templates load")
}
fn validate(paths: &[PathBuf]) -> Validated {
    validate_files(paths, &SheetOptions::default(), &templates())
}
fn validate_one(p: PathBuf) -> Validated {
    validate(&[p])
}
fn messages(v: &Validated) -> Vec<String> {
    v.errors
        .iter()
        .map(std::string::ToString::to_string)
        .collect()
}

/// All rows of a file, header included, as displayed text.
fn read_texts(path: &Path, sheet: Option<&str>) -> Result<Vec<(u64, Vec<String>)>, SheetError> {
    let opts = ReadOptions {
        sheet_name: sheet.map(str::to_string),
        ..ReadOptions::default()
    };
    let mut r = SheetReader::open(path, &opts)?;
    let mut out = Vec::new();
    if let Some(h) = r.header() {
        out.push((h.row, h.cells.iter().map(Cell::display).collect()));
    }
    for row in r.by_ref() {
        let row = row?;
        out.push((row.row, row.cells.iter().map(Cell::display).collect()));
    }
    Ok(out)
}

// ---------------------------------------------------------------- fixture corpus

#[test]
fn latin1_is_refused_with_a_clear_error() {
    let v = validate_one(fixture("latin1-users.csv"));
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    let m = &v.errors[0].message;
    assert!(
        m.contains("not valid UTF-8") && m.contains("CSV UTF-8"),
        "{m}"
    );
    assert_eq!(v.errors[0].row, Some(2));
    assert_eq!(v.errors[0].column.as_deref(), Some("displayName (B)"));
    assert_eq!(v.valid, 0);
}

#[test]
fn missing_upn_column() {
    let v = validate_one(fixture("missing-upn.csv"));
    assert_eq!(v.errors.len(), 1);
    assert!(v.errors[0].message.contains("no upn column"));
    assert_eq!(v.errors[0].row, Some(1));
    assert!(v.specs.is_empty());
}

#[test]
fn empty_file_and_header_only_never_mean_remove_everyone() {
    let v = validate_one(fixture("empty.csv"));
    assert_eq!(v.errors.len(), 1);
    assert!(v.errors[0].message.contains("remove everyone"));
    assert_eq!(v.errors[0].row, None);
    let v = validate_one(fixture("header-only.csv"));
    assert_eq!((v.rows, v.valid, v.errors.len()), (0, 0, 1));
    assert!(v.errors[0].message.contains("no user rows"));
}

#[test]
fn duplicate_upns_differing_in_case() {
    let v = validate_one(fixture("duplicate-upn-case.csv"));
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    let e = &v.errors[0];
    assert_eq!(e.row, Some(4));
    assert_eq!(e.column.as_deref(), Some("upn (A)"));
    assert!(
        e.message.contains("also on this sheet's row 2"),
        "{}",
        e.message
    );
    assert_eq!((v.rows, v.valid), (3, 2));
}

#[test]
fn numbers_mangled_by_excel_are_errors() {
    let v = validate_one(fixture("excel-scientific.csv"));
    assert_eq!((v.rows, v.valid), (3, 1));
    assert_eq!(v.errors.len(), 2);
    for (e, row) in v.errors.iter().zip([2, 3]) {
        assert_eq!(e.row, Some(row));
        assert_eq!(e.column.as_deref(), Some("number (B)"));
        assert!(e.message.contains("scientific notation"), "{}", e.message);
    }
}

#[test]
fn invalid_countries() {
    let v = validate_one(fixture("invalid-countries.csv"));
    let rows: Vec<_> = v.errors.iter().map(|e| e.row.unwrap()).collect();
    assert_eq!(rows, vec![2, 3, 5], "{:?}", messages(&v));
    assert!(v.errors[2].message.contains("cannot be cleared"));
    assert_eq!(v.warnings.len(), 1);
    assert_eq!(v.warnings[0].row, Some(4));
    assert!(v.warnings[0].message.contains("\"GB\""));
    let countries: Vec<_> = v
        .specs
        .iter()
        .map(|s| s.country.as_set().unwrap().as_str().to_string())
        .collect();
    assert_eq!(countries, vec!["GB", "BE"]);
}

#[test]
fn a_template_that_extends_itself() {
    let e = TemplateSet::load_dir(&fixture("templates-cycle")).unwrap_err();
    assert!(matches!(e, TemplateError::Cycle { .. }));
    assert_eq!(e.to_string(), "template inheritance cycle: loop → loop");
}

#[test]
fn corrupt_xlsx_is_a_file_level_error() {
    let v = validate_one(fixture("corrupt.xlsx"));
    assert_eq!(v.errors.len(), 1);
    assert_eq!(v.errors[0].row, None);
    assert!(
        v.errors[0].message.contains("corrupt XLSX"),
        "{}",
        v.errors[0]
    );
}

#[test]
fn truncated_xlsx_is_a_file_level_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xlsx");
    write_users_xlsx(&good);
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("truncated.xlsx");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let v = validate_one(bad);
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    assert_eq!(v.errors[0].row, None);
}

#[test]
fn an_xlsx_that_is_really_csv_is_read_as_csv_with_a_warning() {
    let v = validate_one(fixture("really-csv.xlsx"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.valid, 1);
    assert!(v.warnings[0].message.contains("holds CSV text"));
    // binary junk named .xlsx is refused, not read as CSV
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.xlsx");
    std::fs::write(&junk, [0x00u8, 0x01, 0x02, 0xff, 0x10, 0x00]).unwrap();
    let v = validate_one(junk);
    assert!(
        v.errors[0].message.contains("not a spreadsheet"),
        "{}",
        v.errors[0]
    );
}

#[test]
fn utf16_unicode_text_files() {
    for f in ["unicode-text.txt", "unicode-text-be.txt"] {
        let v = validate_one(fixture(f));
        assert!(v.errors.is_empty(), "{f}: {:?}", v.errors);
        assert_eq!(v.valid, 2);
        assert_eq!(v.specs[0].display_name, Field::Set("Amélie Bernard".into()));
        assert_eq!(
            v.specs[0].number.as_set().unwrap().to_string(),
            "+33140201001"
        );
        // national form, country from the row
        assert_eq!(
            v.specs[1].number.as_set().unwrap().to_string(),
            "+31302861206"
        );
        assert_eq!(v.specs[1].display_name, Field::Set("Zoë van Dijk".into()));
    }
}

#[test]
fn semicolon_csv() {
    let v = validate_one(fixture("semicolon.csv"));
    // "02 540 52 02" has no country: the row gives none and has no template
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    assert_eq!(v.errors[0].row, Some(3));
    assert!(v.errors[0].message.contains("no country code"));
    assert_eq!(v.rows, 2);
    assert_eq!(v.specs[0].display_name, Field::Set("Martin, Alice".into()));
    assert_eq!(v.specs[0].groups, Field::Set(vec!["All Company".into()]));
    let rows = read_texts(&fixture("semicolon.csv"), None).unwrap();
    assert_eq!(rows[2].1[3], "All Company;Sales");
}

#[test]
fn bom_csv_with_alias_headers() {
    let v = validate_one(fixture("bom.csv"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(
        v.specs[0].upn.as_str(),
        "pieter.devries@contoso.onmicrosoft.com"
    );
    assert_eq!(v.specs[0].country.as_set().unwrap().as_str(), "NL");
}

#[test]
fn quoted_newlines_keep_spreadsheet_rows() {
    let v = validate_one(fixture("quoted-newlines.csv"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(
        v.specs[0].display_name,
        Field::Set("Alice\r\nMartin".into())
    );
    assert_eq!(
        v.specs[0].groups,
        Field::Set(vec!["All Company".into(), "Sales".into()])
    );
    assert_eq!(
        v.specs[1].display_name,
        Field::Set("Bob \"the builder\" Peeters".into())
    );
    // a quoted newline is one row; the blank line after it is row 3
    assert_eq!(v.specs[1].origin.as_ref().unwrap().row, 4);
}

#[test]
fn apostrophes_are_stripped_everywhere() {
    let v = validate_one(fixture("apostrophes.csv"));
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let s = &v.specs[0];
    assert_eq!(s.upn.as_str(), "alice.martin@contoso.onmicrosoft.com");
    assert_eq!(s.display_name, Field::Set("=Alice".into()));
    assert_eq!(s.number.as_set().unwrap().to_string(), "+3225405201");
    assert_eq!(s.vrp, Field::Clear);
}

#[test]
fn semicolon_csv_national_number_needs_a_country() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("n.csv");
    std::fs::write(
        &p,
        "upn;number\nbob.peeters@contoso.onmicrosoft.com;02 540 52 02\n",
    )
    .unwrap();
    let v = validate_one(p);
    assert_eq!(v.errors.len(), 1);
    assert!(v.errors[0].message.contains("no country code"));
}

// ---------------------------------------------------------------- limits, hostile files

#[test]
fn a_10_mb_cell_is_refused_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.csv");
    let mut f = std::fs::File::create(&p).unwrap();
    writeln!(f, "upn,displayName").unwrap();
    writeln!(f, "alice.martin@contoso.onmicrosoft.com,Alice").unwrap();
    write!(f, "bob.peeters@contoso.onmicrosoft.com,").unwrap();
    f.write_all(&vec![b'x'; 10 * 1024 * 1024]).unwrap();
    writeln!(f).unwrap();
    drop(f);
    let v = validate_one(p.clone());
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    let e = &v.errors[0];
    assert_eq!(e.row, Some(3));
    assert_eq!(e.column.as_deref(), Some("displayName (B)"));
    assert!(e.message.contains("limits.max_cell_chars"), "{}", e.message);

    // and a file-size cap below it refuses the file outright
    let opts = SheetOptions {
        limits: Limits {
            max_file_bytes: 1024 * 1024,
            ..Limits::default()
        },
        ..SheetOptions::default()
    };
    let v = validate_files(&[p], &opts, &templates());
    assert_eq!(v.errors[0].row, None);
    // named by its config key
    assert!(v.errors[0].message.contains("limits.max_file_mb"));
}

#[test]
fn row_and_column_limits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rows.csv");
    let mut text = String::from("upn\n");
    for i in 0..20 {
        text.push_str(&format!("u{i}@contoso.onmicrosoft.com\n"));
    }
    std::fs::write(&p, text).unwrap();
    let limits = Limits {
        max_rows: 10,
        max_columns: 3,
        ..Limits::default()
    };
    let opts = SheetOptions {
        limits: limits.clone(),
        ..SheetOptions::default()
    };
    let v = validate_files(&[p], &opts, &templates());
    assert!(v.errors.last().unwrap().message.contains("limits.max_rows"));
    let wide = dir.path().join("wide.csv");
    std::fs::write(&wide, "upn,a,b,c,d\n").unwrap();
    let v = validate_files(&[wide], &opts, &templates());
    assert!(
        v.errors[0].message.contains("limits.max_columns"),
        "{:?}",
        v.errors
    );
}

/// Rewrites one entry of a zip (an XLSX) with new content.
fn patch_zip(src: &Path, dst: &Path, entry: &str, content: &[u8]) {
    let mut zin = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().to_string();
        zout.start_file(&name, opts).unwrap();
        if name == entry {
            zout.write_all(content).unwrap();
        } else {
            std::io::copy(&mut f, &mut zout).unwrap();
        }
    }
    zout.finish().unwrap();
}

const SHEET_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#;

#[test]
fn hostile_xlsx_files_are_rejected_not_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xlsx");
    write_users_xlsx(&good);

    // a declared dimension far beyond the limits
    let huge = dir.path().join("huge-dimension.xlsx");
    let xml = format!(
        r#"{SHEET_HEAD}<dimension ref="A1:XFD1048576"/><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>upn</t></is></c></row></sheetData></worksheet>"#
    );
    patch_zip(&good, &huge, "xl/worksheets/sheet1.xml", xml.as_bytes());
    let opts = SheetOptions {
        limits: Limits {
            max_rows: 100_000,
            ..Limits::default()
        },
        ..SheetOptions::default()
    };
    let v = validate_files(&[huge], &opts, &templates());
    assert!(
        v.errors[0].message.contains("declares 1048576 rows"),
        "{:?}",
        v.errors
    );

    // a shared-string index past the table (calamine would panic): refused, located
    let bad_index = dir.path().join("bad-sst-index.xlsx");
    let xml = format!(
        r#"{SHEET_HEAD}<sheetData><row r="1"><c r="A1" t="s"><v>99999</v></c></row></sheetData></worksheet>"#
    );
    patch_zip(
        &good,
        &bad_index,
        "xl/worksheets/sheet1.xml",
        xml.as_bytes(),
    );
    let v = validate_one(bad_index);
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    assert!(
        v.errors[0]
            .message
            .contains("refers to shared string #99999, but the table holds"),
        "{}",
        v.errors[0]
    );
    assert_eq!(
        (v.errors[0].row, v.errors[0].column.as_deref()),
        (Some(1), Some("A"))
    );

    // a value far to the right of the column limit
    let far = dir.path().join("far-column.xlsx");
    let xml = format!(
        r#"{SHEET_HEAD}<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>upn</t></is></c><c r="ZZ1" t="inlineStr"><is><t>x</t></is></c></row></sheetData></worksheet>"#
    );
    patch_zip(&good, &far, "xl/worksheets/sheet1.xml", xml.as_bytes());
    let v = validate_one(far);
    assert!(
        v.errors[0].message.contains("limits.max_columns"),
        "{:?}",
        v.errors
    );

    // an empty shared string, which calamine 0.31 would mis-index
    let empty_sst = fixture("calamine/empty_shared_string.xlsx");
    let v = validate_one(empty_sst);
    assert!(
        v.errors[0].message.contains("shared string #1 is empty"),
        "{:?}",
        v.errors
    );
}

#[test]
fn zip_bomb_guard() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "upn").unwrap();
    let filler = "a".repeat(1000);
    for r in 1..2000u32 {
        ws.write_string(r, 0, format!("u{r}@contoso.onmicrosoft.com"))
            .unwrap();
        ws.write_formula(
            r,
            1,
            Formula::new(format!("=\"{filler}\"")).set_result(&filler),
        )
        .unwrap();
    }
    wb.save(&p).unwrap();
    let size = std::fs::metadata(&p).unwrap().len();
    let opts = SheetOptions {
        limits: Limits {
            max_file_bytes: size + 1,
            ..Limits::default()
        },
        ..SheetOptions::default()
    };
    let v = validate_files(&[p], &opts, &templates());
    // counted while inflating (the directory's sizes are not trusted), naming the part
    assert!(
        v.errors[0]
            .message
            .contains("xl/worksheets/sheet1.xml (sheet \"Sheet1\") inflates to more than")
            && v.errors[0].message.contains("zip-bomb budget"),
        "{:?}",
        v.errors
    );
}

#[test]
fn the_xlsx_reader_thread_stops_when_the_reader_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("many.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "upn").unwrap();
    for r in 1..3000u32 {
        ws.write_string(r, 0, format!("u{r}@contoso.onmicrosoft.com"))
            .unwrap();
    }
    wb.save(&p).unwrap();
    for _ in 0..3 {
        let mut r = SheetReader::open(&p, &ReadOptions::default()).unwrap();
        assert_eq!(r.next().unwrap().unwrap().row, 2);
        drop(r);
    }
    let all = read_texts(&p, None).unwrap();
    assert_eq!(all.len(), 3000);
    assert_eq!(all[2999].0, 3000);
}

// ---------------------------------------------------------------- our XLSX format

/// A user sheet as Excel users make them: numeric phone cells (displayed with a `+0`
/// format), a formula with a cached value, blank rows, apostrophe-prefixed text.
fn write_users_xlsx(path: &Path) {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Users").unwrap();
    let plus = Format::new().set_num_format("+0");
    let quote = Format::new().set_quote_prefix();
    for (c, h) in [
        "User Principal Name",
        "Display Name",
        "Phone Number",
        "Template",
        "VRP",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    // row 2: numeric phone cell
    ws.write_string(1, 0, "alice.martin@contoso.onmicrosoft.com")
        .unwrap();
    ws.write_string(1, 1, "Alice Martin").unwrap();
    ws.write_number_with_format(1, 2, 3225405201.0, &plus)
        .unwrap();
    ws.write_string(1, 3, "be-sales").unwrap();
    // rows 3-4 blank (row 4 has only a blank-formatted cell)
    ws.write_blank(3, 1, &plus).unwrap();
    // row 5: number built by a formula, cached value kept; text with quote prefix
    ws.write_string(4, 0, "bob.peeters@contoso.onmicrosoft.com")
        .unwrap();
    ws.write_string_with_format(4, 1, "=Bob Peeters", &quote)
        .unwrap();
    ws.write_formula(
        4,
        2,
        Formula::new("=\"+32 2 540 52 \"&\"02\"").set_result("+32 2 540 52 02"),
    )
    .unwrap();
    ws.write_string(4, 3, "be-office").unwrap();
    ws.write_string(4, 4, "'-").unwrap();
    // row 6: numeric formula result, apostrophe typed into the text itself
    ws.write_string(5, 0, "'pieter.devries@contoso.onmicrosoft.com")
        .unwrap();
    ws.write_formula(5, 2, Formula::new("=31302861201").set_result("31302861201"))
        .unwrap();
    ws.write_string(5, 3, "nl-office").unwrap();
    // row 7: a formula whose value is empty leaves the field alone
    ws.write_string(6, 0, "uma.meijer@contoso.onmicrosoft.com")
        .unwrap();
    ws.set_formula_result_default("");
    ws.write_formula(6, 2, "=\"\"").unwrap();
    ws.write_string(6, 3, "nl-office").unwrap();
    wb.save(path).unwrap();
}

#[test]
fn our_xlsx_user_sheet() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("users.xlsx");
    write_users_xlsx(&p);
    let v = validate_one(p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!((v.rows, v.valid), (4, 4));
    let by_row: BTreeMap<u64, _> = v
        .specs
        .iter()
        .map(|s| (s.origin.as_ref().unwrap().row, s))
        .collect();
    assert_eq!(by_row.keys().copied().collect::<Vec<_>>(), vec![2, 5, 6, 7]);
    let alice = by_row[&2];
    assert_eq!(alice.number.as_set().unwrap().to_string(), "+3225405201");
    assert_eq!(alice.vrp, Field::Set("International".into()));
    let bob = by_row[&5];
    assert_eq!(bob.display_name, Field::Set("=Bob Peeters".into()));
    assert_eq!(bob.number.as_set().unwrap().to_string(), "+3225405202");
    assert_eq!(bob.vrp, Field::Clear);
    let pieter = by_row[&6];
    assert_eq!(
        pieter.upn.as_str(),
        "pieter.devries@contoso.onmicrosoft.com"
    );
    assert_eq!(pieter.number.as_set().unwrap().to_string(), "+31302861201");
    let uma = by_row[&7];
    assert_eq!(uma.number, Field::Keep);
    assert_eq!(uma.country.as_set().unwrap().as_str(), "NL");
    // bob clears the template's vrp: warned
    assert!(v
        .warnings
        .iter()
        .any(|w| w.row == Some(5) && w.message.contains("overrides template be-office")));
}

#[test]
fn xlsx_numeric_cells_that_cannot_be_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad-numbers.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "upn").unwrap();
    ws.write_string(0, 1, "number").unwrap();
    ws.write_string(1, 0, "a@contoso.onmicrosoft.com").unwrap();
    ws.write_number(1, 1, 3225405201.5).unwrap();
    ws.write_string(2, 0, "b@contoso.onmicrosoft.com").unwrap();
    ws.write_number(2, 1, 1.0e17).unwrap();
    ws.write_string(3, 0, "c@contoso.onmicrosoft.com").unwrap();
    ws.write_string(3, 1, "3.2254052E+09").unwrap();
    ws.write_string(4, 0, "d@contoso.onmicrosoft.com").unwrap();
    ws.write_boolean(4, 1, true).unwrap();
    wb.save(&p).unwrap();
    let v = validate_one(p);
    let got: Vec<(u64, &str)> = v
        .errors
        .iter()
        .map(|e| (e.row.unwrap(), e.column.as_deref().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (2, "number (B)"),
            (3, "number (B)"),
            (4, "number (B)"),
            (5, "number (B)")
        ]
    );
    assert!(v.errors[0].message.contains("not a whole number"));
    assert!(v.errors[1].message.contains("too large"));
    assert!(v.errors[2].message.contains("scientific"));
}

#[test]
fn named_sheets() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("two.xlsx");
    let mut wb = Workbook::new();
    wb.add_worksheet()
        .set_name("Notes")
        .unwrap()
        .write_string(0, 0, "read me")
        .unwrap();
    let ws = wb.add_worksheet().set_name("Users").unwrap();
    ws.write_string(0, 0, "upn").unwrap();
    ws.write_string(1, 0, "a@contoso.onmicrosoft.com").unwrap();
    wb.save(&p).unwrap();
    let v = validate_one(p.clone());
    assert!(v.errors[0].message.contains("unknown column \"read me\""));
    let opts = SheetOptions {
        sheet_name: Some("users".into()),
        ..SheetOptions::default()
    };
    let v = validate_files(std::slice::from_ref(&p), &opts, &templates());
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.valid, 1);
    let opts = SheetOptions {
        sheet_name: Some("Staff".into()),
        ..SheetOptions::default()
    };
    let v = validate_files(&[p], &opts, &templates());
    assert!(v.errors[0].message.contains("no sheet named \"Staff\""));
    assert!(v.errors[0].message.contains("\"Notes\", \"Users\""));
}

// ---------------------------------------------------------------- samples

#[test]
fn shipped_samples_validate_cleanly() {
    let v = validate_one(root().join("samples/users.csv"));
    assert!(v.errors.is_empty(), "{:?}", messages(&v));
    assert_eq!((v.rows, v.valid), (12, 12));
    assert_eq!(v.kind, JobKind::MsUsers);
    let rosa = v
        .specs
        .iter()
        .find(|s| s.upn.as_str().starts_with("rosa"))
        .unwrap();
    assert_eq!(rosa.vrp, Field::Clear);
    let damien = v
        .specs
        .iter()
        .find(|s| s.upn.as_str().starts_with("damien"))
        .unwrap();
    assert_eq!(damien.action, RowAction::Disable);
    let sophie = v
        .specs
        .iter()
        .find(|s| s.upn.as_str().starts_with("sophie"))
        .unwrap();
    assert_eq!(sophie.number.as_set().unwrap().to_string(), "+3225405210");
    assert_eq!(sophie.country.as_set().unwrap().as_str(), "BE");
    assert_eq!(
        sophie.groups,
        Field::Set(vec!["All Company".into(), "BE Office".into()])
    );

    let ra = validate_one(root().join("samples/resource-accounts.csv"));
    assert!(ra.errors.is_empty(), "{:?}", messages(&ra));
    assert_eq!(ra.kind, JobKind::MsResourceAccounts);
    assert_eq!(ra.valid, 3);
    assert_eq!(ra.specs[0].account_type, Some(AccountType::CallQueue));
    // The shipped resource-account template leaves licenses to the tenant (which assigns
    // the virtual-user license itself).
    assert_eq!(ra.specs[0].licenses, Field::Keep);
}

/// Writes samples/users.csv as an XLSX the way Excel would hold it: `+digits` numbers as
/// numeric cells shown with a `+0` format, everything else as text.
fn csv_to_xlsx(csv_path: &Path, xlsx_path: &Path) {
    let rows = read_texts(csv_path, None).unwrap();
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Users").unwrap();
    let plus = Format::new().set_num_format("+0");
    let bold = Format::new().set_bold();
    for (r, (_, cells)) in rows.iter().enumerate() {
        for (c, text) in cells.iter().enumerate() {
            let (r, c) = (r as u32, c as u16);
            let digits = text
                .strip_prefix('+')
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
            if r == 0 {
                ws.write_string_with_format(r, c, text, &bold).unwrap();
            } else if let (Some(d), true) = (digits, !text.is_empty()) {
                ws.write_number_with_format(r, c, d.parse::<f64>().unwrap(), &plus)
                    .unwrap();
            } else if !text.is_empty() {
                ws.write_string(r, c, text).unwrap();
            }
        }
    }
    ws.autofit();
    wb.save(xlsx_path).unwrap();
}

/// samples/users.xlsx is generated from samples/users.csv by `csv_to_xlsx`; run with
/// TS_REGENERATE_SAMPLES=1 to rewrite it after editing the CSV.
#[test]
fn sample_xlsx_matches_sample_csv() {
    let csv = root().join("samples/users.csv");
    let xlsx = root().join("samples/users.xlsx");
    if std::env::var_os("TS_REGENERATE_SAMPLES").is_some() {
        csv_to_xlsx(&csv, &xlsx);
    }
    let strip = |v: Validated| {
        v.specs
            .into_iter()
            .map(|mut s| {
                s.origin = None;
                s
            })
            .collect::<Vec<_>>()
    };
    let from_csv = validate_one(csv);
    let from_xlsx = validate_one(xlsx);
    assert!(from_xlsx.errors.is_empty(), "{:?}", messages(&from_xlsx));
    assert_eq!(from_xlsx.warnings.len(), from_csv.warnings.len());
    assert_eq!(strip(from_xlsx), strip(from_csv));
}

// ---------------------------------------------------------------- third-party corpora

#[test]
fn calamine_real_excel_and_libreoffice_files() {
    let f = |n: &str| fixture(&format!("calamine/{n}"));
    let t = |rows: &[(u64, Vec<String>)], i: usize| rows[i].1.clone();

    let r = read_texts(&f("issues.xlsx"), None).unwrap();
    let col_a: Vec<String> = r.iter().map(|(_, c)| c[0].clone()).collect();
    assert_eq!(col_a, vec!["1", "1.5", "ab", "FALSE", "test", "2016-10-20"]);
    let r = read_texts(&f("issues.xlsx"), Some("issue2")).unwrap();
    assert_eq!(t(&r, 2), vec!["3", "c"]);
    let r = read_texts(&f("issues.xlsx"), Some("issue5")).unwrap();
    assert_eq!(t(&r, 0), vec!["0.5"]);
    // the same workbook saved as XLSB, streamed the same way (after the pre-pass)
    let r = read_texts(&f("issues.xlsb"), Some("issue2")).unwrap();
    assert_eq!(
        r,
        read_texts(&f("issues.xlsx"), Some("issue2")).unwrap(),
        "XLSB and XLSX read alike"
    );
    let r = read_texts(&f("issues.xlsb"), None).unwrap();
    assert_eq!(r[0].1[0], "1");

    for file in ["date.xlsx", "date_1904.xlsx"] {
        let r = read_texts(&f(file), None).unwrap();
        assert_eq!(t(&r, 0), vec!["2021-01-01", "15"], "{file}");
        assert_eq!(t(&r, 2)[0], "255:10:10", "{file}");
    }

    let r = read_texts(&f("header-row.xlsx"), None).unwrap();
    let rows: Vec<u64> = r.iter().map(|(n, _)| *n).collect();
    assert_eq!(rows, vec![3, 9, 10]);
    assert_eq!(
        t(&r, 1),
        vec!["Columns", "Column A", "Column B", "Column C"]
    );

    let r = read_texts(&f("has_x000D_.xlsx"), None).unwrap();
    assert_eq!(t(&r, 0), vec!["ABC\r\nDEF"]);

    let r = read_texts(&f("inventory-table.xlsx"), None).unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(t(&r, 4), vec!["4", "Pear", "100"]);

    let r = read_texts(&f("merge_cells.xlsx"), None).unwrap();
    assert_eq!(t(&r, 0)[0], "Row Merge");
    assert_eq!(t(&r, 1)[1], "Chunk Merged");

    let r = read_texts(&f("issues.xlsx"), Some("spc_chrs")).unwrap();
    let all: String = r.iter().flat_map(|(_, c)| c.clone()).collect();
    for ch in ["&", "<", ">", "'", "\"", "☺"] {
        assert!(all.contains(ch), "{ch} in {all:?}");
    }

    // calamine 0.31 misreads these; they are refused with a clear error, never a panic
    let e = read_texts(&f("empty_shared_string.xlsx"), None).unwrap_err();
    assert!(e.to_string().contains("shared string #1 is empty"), "{e}");
    let e = read_texts(&f("richtext-after-plain.xlsx"), None).unwrap_err();
    assert!(
        e.to_string()
            .contains("mixes plain text and rich-text runs"),
        "{e}"
    );
    let e = read_texts(&f("inlineStr_with_value.xlsx"), None).unwrap_err();
    assert!(e.to_string().contains("corrupt XLSX"), "{e}");
}

#[test]
fn csv_spectrum_through_the_csv_reader() {
    let dir = fixture("csv-spectrum/csvs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let json = fixture(&format!("csv-spectrum/json/{stem}.json"));
        let want: Vec<BTreeMap<String, String>> =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        let rows = read_texts(&path, None).unwrap();
        let header = &rows[0].1;
        let got: Vec<BTreeMap<String, String>> = rows[1..]
            .iter()
            .map(|(_, cells)| {
                header
                    .iter()
                    .enumerate()
                    .map(|(i, h)| (h.clone(), cells.get(i).cloned().unwrap_or_default()))
                    .collect()
            })
            .collect();
        assert_eq!(got, want, "{stem}");
        seen += 1;
    }
    assert_eq!(seen, 11);
}

#[test]
fn frictionless_csv_quirks() {
    let f = |n: &str| fixture(&format!("frictionless/{n}"));
    let r = read_texts(&f("bom.csv"), None).unwrap();
    assert_eq!(r[0].1, vec!["id", "name"]);
    assert_eq!(r[2].1, vec!["2", "中国人"]);
    let r = read_texts(&f("table-delimiter.csv"), None).unwrap();
    assert_eq!(r[2].1, vec!["2", "中国人"]);
    let r = read_texts(&f("issue-1009-semicolon.csv"), None).unwrap();
    assert_eq!(r[1].1, vec!["0123", "c"]);
    let r = read_texts(&f("leading-zeros.csv"), None).unwrap();
    let col: Vec<_> = r.iter().map(|(_, c)| c[0].clone()).collect();
    assert_eq!(col, vec!["value", "01", "002", "00003"]);
    let r = read_texts(&f("blank-rows.csv"), None).unwrap();
    assert_eq!(r.len(), 3);
    let e = read_texts(&f("latin1.csv"), None).unwrap_err();
    assert!(e.to_string().contains("not valid UTF-8"), "{e}");
    // the reader keeps duplicate headers; the validator refuses them
    let r = read_texts(&f("duplicate-column.csv"), None).unwrap();
    assert_eq!(r[0].1, vec!["A", "B", "B", "C"]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dup.csv");
    std::fs::write(&p, "upn,Display Name,name\na@contoso.onmicrosoft.com,A,B\n").unwrap();
    let v = validate_one(p);
    assert!(
        v.errors[0].message.contains("duplicate column"),
        "{:?}",
        v.errors
    );
    assert_eq!(v.errors[0].column.as_deref(), Some("name (C)"));
}

/// A minimal OpenDocument spreadsheet, as LibreOffice lays it out (mimetype first, stored).
fn write_ods(path: &Path, rows_xml: &str) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("mimetype", stored).unwrap();
    z.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    z.start_file("META-INF/manifest.xml", stored).unwrap();
    z.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#).unwrap();
    z.start_file("content.xml", stored).unwrap();
    write!(
        z,
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Users">{rows_xml}</table:table></office:spreadsheet></office:body></office:document-content>"#
    )
    .unwrap();
    z.finish().unwrap();
}

fn ods_text(t: &str) -> String {
    format!(
        r#"<table:table-cell office:value-type="string"><text:p>{t}</text:p></table:table-cell>"#
    )
}

#[test]
fn ods_user_sheet_and_hostile_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("users.ods");
    let rows = format!(
        r#"<table:table-row>{}{}{}</table:table-row><table:table-row table:number-rows-repeated="2"><table:table-cell table:number-columns-repeated="3"/></table:table-row><table:table-row>{}<table:table-cell office:value-type="float" office:value="3225405201"><text:p>3225405201</text:p></table:table-cell>{}</table:table-row><table:table-row table:number-rows-repeated="1048571"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>"#,
        ods_text("upn"),
        ods_text("number"),
        ods_text("template"),
        ods_text("alice.martin@contoso.onmicrosoft.com"),
        ods_text("be-sales"),
    );
    write_ods(&p, &rows);
    let v = validate_one(p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.valid, 1);
    let alice = &v.specs[0];
    assert_eq!(alice.origin.as_ref().unwrap().row, 4);
    assert_eq!(alice.number.as_set().unwrap().to_string(), "+3225405201");

    let bomb = dir.path().join("bomb.ods");
    write_ods(
        &bomb,
        &format!(
            r#"<table:table-row>{}</table:table-row><table:table-row table:number-rows-repeated="2000000000">{}</table:table-row>"#,
            ods_text("upn"),
            ods_text("x@contoso.onmicrosoft.com")
        ),
    );
    let v = validate_one(bomb);
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    assert!(
        v.errors[0].message.contains("limits.max_rows"),
        "{}",
        v.errors[0]
    );
}

#[test]
fn garbage_after_a_zip_or_ole_signature_is_rejected_not_crashing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xlsx");
    write_users_xlsx(&good);
    let bytes = std::fs::read(&good).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..40 {
        // flip a handful of bytes in a real workbook (xorshift: deterministic)
        let mut damaged = bytes.clone();
        for _ in 0..=(i % 8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % damaged.len();
            damaged[at] ^= (seed >> 32) as u8 | 1;
        }
        let p = dir.path().join(format!("damaged-{i}.xlsx"));
        std::fs::write(&p, &damaged).unwrap();
        let v = validate_one(p);
        assert!(v.rows <= 4);
    }
    let ole = dir.path().join("junk.xls");
    let mut junk = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    junk.extend((0..2048u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&ole, junk).unwrap();
    let v = validate_one(ole);
    assert_eq!(v.errors.len(), 1);
    assert!(v.errors[0].message.contains("XLS"), "{}", v.errors[0]);
}
