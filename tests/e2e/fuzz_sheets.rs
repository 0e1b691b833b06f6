//! Bounded fuzzing of everything a sheet passes through: the CSV and workbook readers, the
//! header mapping, the cell normalisers and the row checks. Sheets come from outside, so
//! none of it may panic, whatever the bytes; a panic found here becomes a named regression
//! test below. Case counts stay small so the suite stays fast (a few seconds).

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use teamsync::model::{Country, Field, Upn, E164};
use teamsync::sheet::{cell, Cell};
use teamsync::template::TemplateSet;
use teamsync::validate::{validate_files, SheetOptions, Validated};

fn templates() -> TemplateSet {
    TemplateSet::load_dir(&super::support::repo().join("templates")).expect("templates")
}

/// Validates one file; the only acceptable outcomes are rows and diagnostics.
fn validate(path: &Path) -> Validated {
    validate_files(
        &[path.to_path_buf()],
        &SheetOptions::default(),
        &templates(),
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// A small valid workbook: the bytes the mutations start from.
fn workbook(rows: &[[&str; 4]]) -> Vec<u8> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["upn", "displayName", "number", "country"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            ws.write_string(r as u32 + 1, c as u16, *v).unwrap();
        }
    }
    ws.write_number(rows.len() as u32 + 1, 2, 3225405201.0)
        .unwrap();
    wb.save_to_buffer().unwrap()
}

fn base_workbook() -> Vec<u8> {
    workbook(&[
        ["a@contoso.com", "A", "+3225405201", "BE"],
        ["b@contoso.com", "B", "02 540 52 02", "BE"],
        ["c@contoso.com", "-", "3.2254052E+09", "UK"],
    ])
}

/// Cells that poke at every normaliser: numbers in many spellings, clears, apostrophes,
/// formulas, separators, controls and other scripts.
fn cell_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[+0-9 ().;=a-zA-Z:,'-]{0,24}",
        Just("-".to_string()),
        Just("'=1+1".to_string()),
        Just("tel:+3225405201;ext=12".to_string()),
        Just("3.2254052E+09".to_string()),
        "[a-z]{1,8}@[a-z]{1,8}\\.com",
        "[A-Z]{2}",
        Just("\u{0}\u{feff}\r\n\"".to_string()),
    ]
}

const HEADERS: &[&str] = &[
    "upn",
    "UserPrincipalName",
    "displayName",
    "name",
    "number",
    "LineURI",
    "country",
    "usageLocation",
    "vrp",
    "groups",
    "licenses",
    "customerLicenses",
    "template",
    "accountType",
    "action",
    "Unknown Column",
    "",
];

/// 48 per property in CI; `FUZZ_CASES=5000` for a longer hunt.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_as_csv_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        let v = validate(&write(dir.path(), "f.csv", &bytes));
        prop_assert!(v.valid <= v.rows);
    }

    #[test]
    fn random_bytes_as_xlsx_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let dir = tempfile::tempdir().unwrap();
        let mut b = b"PK\x03\x04".to_vec();
        b.extend_from_slice(&bytes);
        let v = validate(&write(dir.path(), "f.xlsx", &b));
        prop_assert!(!v.is_ok() || v.rows == 0 || v.valid <= v.rows);
    }

    #[test]
    fn damaged_workbooks_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut b = base_workbook();
        for (i, byte) in flips {
            let at = i.index(b.len());
            b[at] = byte;
        }
        if let Some(c) = cut {
            let keep = c.index(b.len());
            b.truncate(keep);
        }
        let dir = tempfile::tempdir().unwrap();
        let v = validate(&write(dir.path(), "f.xlsx", &b));
        prop_assert!(v.valid <= v.rows);
    }

    #[test]
    fn random_sheets_never_panic_and_errors_point_at_rows(
        cols in proptest::collection::vec(prop::sample::select(HEADERS), 1..7),
        rows in proptest::collection::vec(proptest::collection::vec(cell_text(), 0..8), 0..12),
    ) {
        let mut text = cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",");
        for r in &rows {
            text.push('\n');
            text.push_str(&r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "f.csv", text.as_bytes());
        let v = validate(&path);
        prop_assert!(v.valid <= v.rows);
        prop_assert_eq!(v.specs.len() as u64, v.valid);
        // Also as a workbook: the same cells through the XLSX reader.
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for (c, h) in cols.iter().enumerate() {
            ws.write_string(0, c as u16, *h).unwrap();
        }
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                // Excel refuses control characters other than tab and newlines in strings.
                let clean: String = cell.chars().filter(|ch| !ch.is_control() || *ch == '\n').collect();
                ws.write_string(r as u32 + 1, c as u16, &clean).unwrap();
            }
        }
        let xlsx = write(dir.path(), "f.xlsx", &wb.save_to_buffer().unwrap());
        let w = validate(&xlsx);
        prop_assert!(w.valid <= w.rows);
    }

    #[test]
    fn cell_normalisers_never_panic_and_numbers_are_canonical(
        text in cell_text(),
        cc in "[A-Z]{2}",
        int in any::<i64>(),
        float in any::<f64>(),
    ) {
        let mut w = Vec::new();
        let country = Country::parse(&cc).ok();
        let cells = [
            Cell::Text(text.clone()),
            Cell::Int(int),
            Cell::Number(float),
            Cell::DateTime(text.clone()),
            Cell::Error(text.clone()),
            Cell::Bool(int % 2 == 0),
            Cell::Empty,
        ];
        for c in &cells {
            for ctry in [country.as_ref(), None] {
                if let Ok(Field::Set(n)) = cell::number(c, ctry, &mut w) {
                    // What the normaliser returns is canonical: parsing it again is a no-op.
                    let again = E164::parse_canonical(&n.to_string());
                    prop_assert_eq!(again.as_ref().ok(), Some(&n), "{:?} → {}", c, n);
                }
            }
            let _ = cell::country(c, &mut w);
            let _ = cell::upn(c);
            let _ = cell::display_name(c);
            let _ = cell::vrp(c);
            let _ = cell::list(c);
            let _ = cell::action(c);
            let _ = cell::account_type(c);
            let _ = cell::template_name(c);
            let _ = cell::text(c);
        }
        let _ = cell::is_scientific(&text);
        let _ = cell::split_list(&text);
        let _ = cell::clean_text(&text);
        let _ = cell::parse_country(&text, &mut w);
        if let Ok(u) = Upn::parse(&text) {
            prop_assert_eq!(Upn::parse(&u.to_string()).ok(), Some(u));
        }
    }
}
