//! Bounded fuzzing of everything a sheet passes through: the CSV and workbook readers, the
//! header mapping, the cell normalisers and the row checks. Sheets come from outside, so
//! none of it may panic, whatever the bytes; a panic found here becomes a named regression
//! test below. Case counts stay small so the suite stays fast (a few seconds).
//!
//! `hostile_seeds_mutated_never_panic` starts from the hostile files of `hostile_sheets`
//! (at a small scale, with small limits so that every cap of the workbook pre-pass is within
//! reach) and mutates them where the readers look: inside a workbook's uncompressed parts
//! (then zipped again), or in the raw bytes of an XLS or CSV file.
//!
//! Longer hunts: `FUZZ_CASES=5000`, or `FUZZ_SECONDS=120` (as CI runs it): every property
//! then runs batch after batch until that much time has passed since the first one started.

use super::zipbomb::{ZipStream, SHEET_CLOSE, SHEET_OPEN, SST_CLOSE, SST_OPEN};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use teamsync::model::{Country, Field, Upn, E164};
use teamsync::sheet::Limits;
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

/// Cases per run: 48 in the suite, `FUZZ_CASES` when set.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn seconds() -> Option<u64> {
    std::env::var("FUZZ_SECONDS").ok()?.parse().ok()
}

/// When a `FUZZ_SECONDS` hunt ends: that long after the first property started, for all of
/// them, so the whole hunt (whatever the number of test threads) ends on time.
fn deadline() -> Option<Instant> {
    static DEADLINE: OnceLock<Option<Instant>> = OnceLock::new();
    *DEADLINE.get_or_init(|| seconds().map(|s| Instant::now() + Duration::from_secs(s)))
}

/// Runs `test` on [`cases`] values of `strategy` (shrinking a failure as `proptest!` does);
/// with `FUZZ_SECONDS`, runs again with fresh values until the [`deadline`]. Each run gets
/// its own runner (a runner counts its successes across runs) seeded from one random
/// source.
fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    use proptest::test_runner::{Config, TestRunner};
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let deadline = deadline();
    let mut seeds = TestRunner::new(config.clone());
    loop {
        let mut runner = TestRunner::new_with_rng(config.clone(), seeds.new_rng());
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{e}");
        }
        if deadline.is_none_or(|d| Instant::now() >= d) {
            return;
        }
    }
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[test]
fn random_bytes_as_csv_never_panic() {
    fuzz(proptest::collection::vec(any::<u8>(), 0..600), |bytes| {
        let dir = tempfile::tempdir().unwrap();
        let v = validate(&write(dir.path(), "f.csv", &bytes));
        prop_assert!(v.valid <= v.rows);
        Ok(())
    });
}

#[test]
fn random_bytes_as_xlsx_never_panic() {
    fuzz(proptest::collection::vec(any::<u8>(), 0..600), |bytes| {
        let dir = tempfile::tempdir().unwrap();
        let mut b = b"PK\x03\x04".to_vec();
        b.extend_from_slice(&bytes);
        let v = validate(&write(dir.path(), "f.xlsx", &b));
        prop_assert!(!v.is_ok() || v.rows == 0 || v.valid <= v.rows);
        Ok(())
    });
}

#[test]
fn damaged_workbooks_never_panic() {
    let strategy = (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        proptest::option::of(any::<prop::sample::Index>()),
    );
    fuzz(strategy, |(flips, cut)| {
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
        Ok(())
    });
}

#[test]
fn random_sheets_never_panic_and_errors_point_at_rows() {
    let strategy = (
        proptest::collection::vec(prop::sample::select(HEADERS), 1..7),
        proptest::collection::vec(proptest::collection::vec(cell_text(), 0..8), 0..12),
    );
    fuzz(strategy, |(cols, rows)| {
        let mut text = cols
            .iter()
            .map(|c| csv_field(c))
            .collect::<Vec<_>>()
            .join(",");
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
                let clean: String = cell
                    .chars()
                    .filter(|ch| !ch.is_control() || *ch == '\n')
                    .collect();
                ws.write_string(r as u32 + 1, c as u16, &clean).unwrap();
            }
        }
        let xlsx = write(dir.path(), "f.xlsx", &wb.save_to_buffer().unwrap());
        let w = validate(&xlsx);
        prop_assert!(w.valid <= w.rows);
        Ok(())
    });
}

#[test]
fn cell_normalisers_never_panic_and_numbers_are_canonical() {
    let strategy = (cell_text(), "[A-Z]{2}", any::<i64>(), any::<f64>());
    fuzz(strategy, |(text, cc, int, float)| {
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
        Ok(())
    });
}

// ---------------------------------------------------------------- hostile seeds

/// A seed: a zip-based workbook as its uncompressed parts (mutated, then zipped again), or
/// a file's raw bytes.
#[derive(Debug)]
enum Seed {
    Zip {
        ext: &'static str,
        parts: Vec<(&'static str, Vec<u8>)>,
    },
    Raw {
        ext: &'static str,
        bytes: Vec<u8>,
    },
}

/// Limits small enough that every cap of the pre-pass is within reach of a small file:
/// 100 shared strings or 3,200 bytes of them, 6,400 bytes of cell text, 200-character cells.
fn fuzz_limits() -> Limits {
    Limits {
        max_file_bytes: 4 << 20,
        max_rows: 50,
        max_columns: 12,
        max_cell_chars: 200,
    }
}

fn xlsx_seed(sheet_rows: &str, sst: Option<String>) -> Seed {
    let mut parts = vec![
        (
            "xl/workbook.xml",
            br#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets></workbook>"#.to_vec(),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.to_vec(),
        ),
    ];
    if let Some(sst) = sst {
        let mut b = SST_OPEN.to_vec();
        b.extend_from_slice(sst.as_bytes());
        b.extend_from_slice(SST_CLOSE);
        parts.push(("xl/sharedStrings.xml", b));
    }
    let mut sheet = SHEET_OPEN.to_vec();
    sheet.extend_from_slice(sheet_rows.as_bytes());
    sheet.extend_from_slice(SHEET_CLOSE);
    parts.push(("xl/worksheets/sheet1.xml", sheet));
    Seed::Zip { ext: "xlsx", parts }
}

fn ods_seed(rows: &str) -> Seed {
    let content = format!(
        r#"<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="Users"><table:table-row><table:table-cell office:value-type="string"><text:p>upn</text:p></table:table-cell></table:table-row>{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    Seed::Zip {
        ext: "ods",
        parts: vec![
            (
                "mimetype",
                b"application/vnd.oasis.opendocument.spreadsheet".to_vec(),
            ),
            (
                "META-INF/manifest.xml",
                br#"<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>"#.to_vec(),
            ),
            ("content.xml", content.into_bytes()),
        ],
    }
}

/// The hostile files of `hostile_sheets`, small: each trips one cap (or none) of
/// [`fuzz_limits`], so mutations probe both sides of every check.
fn hostile_seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let inline = |r: u32, c: &str, t: &str| {
            format!(r#"<c r="{c}{r}" t="inlineStr"><is><t>{t}</t></is></c>"#)
        };
        let good_rows = format!(
            r#"<row r="2">{}{}<c r="C2"><v>3225405201</v></c></row><row r="3">{}<c r="B3" t="s"><v>0</v></c></row>"#,
            inline(2, "A", "alice.martin@contoso.onmicrosoft.com"),
            inline(2, "B", "Alice"),
            inline(3, "A", "bob.peeters@contoso.onmicrosoft.com"),
        );
        let si = |t: &str| format!("<si><t>{t}</t></si>");
        let xls = std::fs::read(super::support::fixture("sheets/calamine/date.xls")).unwrap();
        let patched = |at: usize, b: &[u8]| {
            let mut x = xls.clone();
            x[at..at + b.len()].copy_from_slice(b);
            x
        };
        let mut utf16 = vec![0xFF, 0xFE];
        for u in "upn\tdisplayName\r\nalice.martin@contoso.onmicrosoft.com\tAlice\r\n".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        vec![
            xlsx_seed(&good_rows, Some(si("Bob"))),
            xlsx_seed(&" ".repeat(70_000), None),
            xlsx_seed(&good_rows, Some(si("x").repeat(120))),
            xlsx_seed(&good_rows, Some(si(&"y".repeat(100)).repeat(40))),
            xlsx_seed(&format!(r#"<row r="2">{}</row>"#, inline(2, "B", &"z".repeat(300))), None),
            xlsx_seed(&good_rows, Some(si(&"w".repeat(250)))),
            xlsx_seed(r#"<row r="2"><c r="B2"><f>SUM(A1)</f><v></v></c><c r="C2"><f>1</f></c></row>"#, None),
            xlsx_seed(
                &format!("<row>{}</row>", r#"<c t="s"><v>0</v></c>"#.repeat(12)).repeat(5),
                Some(si(&"v".repeat(150))),
            ),
            xlsx_seed(&good_rows, Some("<si></si><si><t>a</t><r><t>b</t></r></si>".into())),
            xlsx_seed(r#"<row r="2"><c r="A99999999" t="s"><v>7</v></c></row><dimension ref="B5:A1"/>"#, Some(si("a"))),
            ods_seed(r#"<table:table-row><table:table-cell office:value-type="string"><text:p>a<text:s text:c="100000"/></text:p></table:table-cell></table:table-row>"#),
            ods_seed(r#"<table:table-row table:number-rows-repeated="2"><table:table-cell office:value-type="string" office:string-value="abc" table:number-columns-repeated="13"/></table:table-row>"#),
            Seed::Raw { ext: "xls", bytes: xls.clone() },
            Seed::Raw { ext: "xls", bytes: patched(0xEAB + 4, &[0xFF, 0xFF, 0xFF, 0x00]) },
            Seed::Raw { ext: "xls", bytes: patched(512 + 7 * 4, &3u32.to_le_bytes()) },
            Seed::Raw { ext: "csv", bytes: format!("upn,displayName\na,{}\n", "q".repeat(300)).into_bytes() },
            Seed::Raw { ext: "csv", bytes: format!("upn\na{}\n", ",".repeat(20_000)).into_bytes() },
            Seed::Raw { ext: "txt", bytes: utf16 },
        ]
    })
}

/// One edit: overwrite, insert or delete a byte, or copy a 16-byte slice elsewhere.
fn mutate(bytes: &mut Vec<u8>, edits: &[(prop::sample::Index, u8, u8, prop::sample::Index)]) {
    for (at, byte, kind, from) in edits {
        if bytes.is_empty() {
            bytes.push(*byte);
            continue;
        }
        let i = at.index(bytes.len());
        match kind % 4 {
            0 => bytes[i] = *byte,
            1 => bytes.insert(i, *byte),
            2 => {
                bytes.remove(i);
            }
            _ => {
                let f = from.index(bytes.len());
                let slice: Vec<u8> = bytes[f..(f + 16).min(bytes.len())].to_vec();
                bytes.splice(i..i, slice);
            }
        }
    }
}

#[test]
fn hostile_seeds_mutated_never_panic() {
    let strategy = (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<u8>(),
                any::<u8>(),
                any::<prop::sample::Index>(),
            ),
            0..6,
        ),
    );
    fuzz(strategy, |(seed, part, edits)| {
        let seeds = hostile_seeds();
        let dir = tempfile::tempdir().unwrap();
        let path = match &seeds[seed.index(seeds.len())] {
            Seed::Zip { ext, parts } => {
                let target = part.index(parts.len());
                let p = dir.path().join(format!("f.{ext}"));
                let mut z = ZipStream::new(std::fs::File::create(&p).unwrap());
                for (i, (name, bytes)) in parts.iter().enumerate() {
                    let mut b = bytes.clone();
                    if i == target {
                        mutate(&mut b, &edits);
                    }
                    z.file(name, &b);
                }
                z.finish();
                p
            }
            Seed::Raw { ext, bytes } => {
                let mut b = bytes.clone();
                mutate(&mut b, &edits);
                write(dir.path(), &format!("f.{ext}"), &b)
            }
        };
        let opts = SheetOptions {
            limits: fuzz_limits(),
            ..SheetOptions::default()
        };
        let v = validate_files(std::slice::from_ref(&path), &opts, &templates());
        prop_assert!(v.valid <= v.rows);
        prop_assert_eq!(v.specs.len() as u64, v.valid);
        for d in &v.errors {
            prop_assert!(!d.file.is_empty() && !d.message.is_empty());
        }
        Ok(())
    });
}

/// Each seed, unmutated, is refused for what it was built to show (or read, for the good
/// ones): the corpus keeps probing the caps it was made for.
#[test]
fn every_hostile_seed_trips_what_it_was_built_for() {
    let want = [
        None,
        Some("a text of more than 65536 characters"),
        Some("more than 100 strings"),
        Some("more than 3200 bytes of text"),
        Some("cell is longer than 200 characters"),
        Some("cell is longer than 200 characters"),
        Some("formula without a saved value (and 1 more cell like it)"),
        Some("more than 6400 bytes of text"),
        Some("shared string #0 is empty"),
        Some("not a cell of Excel's grid"),
        Some("cell is longer than 200 characters"),
        Some("data in column 13 (repeats counted), beyond the limit of 12"),
        Some("unknown column"),
        Some("span more than 50 cells"),
        Some("a sector chain that loops"),
        Some("cell is longer than 200 characters"),
        Some("more than 16384 fields"),
        None,
    ];
    let seeds = hostile_seeds();
    assert_eq!(seeds.len(), want.len());
    let dir = tempfile::tempdir().unwrap();
    let opts = SheetOptions {
        limits: fuzz_limits(),
        ..SheetOptions::default()
    };
    for (i, (seed, want)) in seeds.iter().zip(want).enumerate() {
        let path = match seed {
            Seed::Zip { ext, parts } => {
                let p = dir.path().join(format!("s{i}.{ext}"));
                let mut z = ZipStream::new(std::fs::File::create(&p).unwrap());
                for (name, bytes) in parts {
                    z.file(name, bytes);
                }
                z.finish();
                p
            }
            Seed::Raw { ext, bytes } => write(dir.path(), &format!("s{i}.{ext}"), bytes),
        };
        let v = validate_files(std::slice::from_ref(&path), &opts, &templates());
        let all: Vec<String> = v.errors.iter().map(|d| d.message.clone()).collect();
        match want {
            None => assert!(
                v.valid > 0 && !all.iter().any(|m| m.contains("refused")),
                "seed {i}: {all:?}"
            ),
            Some(w) => assert!(
                all.iter().any(|m| m.contains(w)),
                "seed {i}: want {w:?} in {all:?}"
            ),
        }
    }
}
