//! `BENCH_ONLY=hostile`: what the hostile-sheet caps (issue 20) cost at their edges, at the
//! default limits. The e2e tests show that bombs are refused early and cheaply; these are
//! the workbooks that *pass* the pre-pass and sit right at a cap, where calamine then does
//! its worst, plus the slowest refusal (a workbook that inflates to the whole budget
//! without tripping anything else). Each runs `validate` in a child process like the other
//! validate figures, reporting exit code, seconds and peak RSS.

#[path = "../../tests/e2e/zipbomb.rs"]
mod zipbomb;

use serde_json::{json, Value};
use std::path::Path;
use zipbomb::{once, repeat, xlsx, ZipStream, SHEET_CLOSE, SHEET_OPEN, SST_CLOSE, SST_OPEN};

/// (name, what it shows, builder)
type Case = (&'static str, &'static str, fn(&Path));

const CASES: &[Case] = &[
    (
        "sst-at-caps",
        "a shared-strings table just under both caps (1,999,999 strings, 62 MB of text), loaded whole by calamine",
        |p| {
            let si = format!("<si><t>{}</t></si>", "a".repeat(31));
            let sst = [once(SST_OPEN), repeat(si.as_bytes(), 1_999_999), once(SST_CLOSE)];
            let sheet = [
                once(SHEET_OPEN),
                once(br#"<row r="2"><c r="A2" t="s"><v>0</v></c></row>"#),
                once(SHEET_CLOSE),
            ];
            xlsx(p, &sheet, None, Some(&sst));
        },
    ),
    (
        "rows-all-invalid",
        "999,999 rows, every one an error (an invalid UPN): what validate keeps for them",
        |p| {
            let sst = [
                once(SST_OPEN),
                once(b"<si><t>not-an-upn</t></si><si><t>Name</t></si>"),
                once(SST_CLOSE),
            ];
            let sheet = [
                once(SHEET_OPEN),
                repeat(br#"<row><c t="s"><v>0</v></c><c t="s"><v>1</v></c></row>"#, 999_999),
                once(SHEET_CLOSE),
            ];
            xlsx(p, &sheet, None, Some(&sst));
        },
    ),
    (
        "budget-tag-soup",
        "3.4 GB of empty rows from a few MB: refused at the 3.2 GB budget (the slowest refusal)",
        |p| {
            let sheet = [
                once(SHEET_OPEN),
                repeat(br#"<row r="2"></row>"#, 200_000_000),
                once(SHEET_CLOSE),
            ];
            xlsx(p, &sheet, None, None);
        },
    ),
    (
        "ods-at-caps",
        "an ODS grid of 1,000,000 cells of 15-byte text (both ODS caps), loaded whole by calamine",
        |p| {
            let cell = r#"<table:table-cell office:value-type="string" office:string-value="abcdefghijklmno" table:number-columns-repeated="10"/>"#;
            let rows = format!(
                r#"<table:table-row><table:table-cell office:value-type="string" office:string-value="upn"/></table:table-row><table:table-row table:number-rows-repeated="99999">{cell}</table:table-row>"#
            );
            let file = std::io::BufWriter::new(std::fs::File::create(p).expect("create"));
            let mut z = ZipStream::new(file);
            z.file("mimetype", b"application/vnd.oasis.opendocument.spreadsheet");
            z.file("META-INF/manifest.xml", br#"<?xml version="1.0"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>"#);
            let content = format!(
                r#"<?xml version="1.0"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet><table:table table:name="Users">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
            );
            z.file("content.xml", content.as_bytes());
            let mut w = z.finish();
            std::io::Write::flush(&mut w).expect("flush");
        },
    ),
];

/// Builds each case in `dir` and validates it in a child process with the default limits.
pub async fn run(dir: &Path, cfg: &Path) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    for (name, what, build) in CASES {
        let ext = if name.starts_with("ods") {
            "ods"
        } else {
            "xlsx"
        };
        let path = dir.join(format!("{name}.{ext}"));
        build(&path);
        eprintln!("hostile: {name}…");
        let r = super::child(&[
            "validate".to_string(),
            path.display().to_string(),
            cfg.display().to_string(),
        ])
        .await?;
        out.push(json!({
            "case": name,
            "what": what,
            "bytes": std::fs::metadata(&path)?.len(),
            "result": r,
        }));
        std::fs::remove_file(&path)?;
    }
    Ok(Value::Array(out))
}

/// The Markdown rows of the results.
pub fn render(r: &Value) -> String {
    let mut o = String::new();
    for c in r.as_array().into_iter().flatten() {
        let res = &c["result"];
        o += &format!(
            "| hostile: {} ({:.1} MB file): {} | exit {}, {:.2} s, peak RSS **{:.0} MiB** |\n",
            c["case"].as_str().unwrap_or("?"),
            c["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            c["what"].as_str().unwrap_or(""),
            res["exit"],
            res["seconds"].as_f64().unwrap_or(0.0),
            res["peak_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    o
}
