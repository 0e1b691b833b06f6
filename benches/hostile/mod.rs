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
use zipbomb::{
    biff, once, repeat, xls, xlsx, ZipStream, SHEET_CLOSE, SHEET_OPEN, SST_CLOSE, SST_OPEN,
};

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
        "xlsx-all-caps",
        "every XLSX cap at once: the shared strings above, 8 MiB of number formats, 4 MiB of defined names, 19,000 rows of 200 cells holding 118 MB of shared-string copies",
        |p| {
            let file = std::io::BufWriter::new(std::fs::File::create(p).expect("create"));
            let mut z = ZipStream::new(file);
            let mut workbook = br#"<?xml version="1.0"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Users" sheetId="1" r:id="rId1"/></sheets><definedNames>"#.to_vec();
            let name = br#"<definedName name="a_defined_name">Users!$A$1:$B$2</definedName>"#;
            workbook.extend(name.repeat((4 << 20) / name.len() - 10));
            workbook.extend_from_slice(b"</definedNames></workbook>");
            z.file("xl/workbook.xml", &workbook);
            z.file("xl/_rels/workbook.xml.rels", br#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#);
            let mut styles = br#"<?xml version="1.0"?><styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><numFmts>"#.to_vec();
            let mut id = 200u32;
            while styles.len() < (8 << 20) - 200 {
                styles.extend(format!(r#"<numFmt numFmtId="{id}" formatCode="0.000000000"/>"#).bytes());
                id += 1;
            }
            styles.extend_from_slice(b"</numFmts></styleSheet>");
            z.file("xl/styles.xml", &styles);
            let si = format!("<si><t>{}</t></si>", "a".repeat(31));
            z.entry(
                "xl/sharedStrings.xml",
                &[once(SST_OPEN), repeat(si.as_bytes(), 1_999_999), once(SST_CLOSE)],
                None,
            );
            let row = format!("<row>{}</row>", r#"<c t="s"><v>0</v></c>"#.repeat(200));
            z.entry(
                "xl/worksheets/sheet1.xml",
                &[once(SHEET_OPEN), repeat(row.as_bytes(), 19_000), once(SHEET_CLOSE)],
                None,
            );
            let mut w = z.finish();
            std::io::Write::flush(&mut w).expect("flush");
        },
    ),
    (
        "xls-at-caps",
        "an XLS just under its 8 MiB cap: 300,000 shared strings and 850,000 number cells, loaded whole by calamine",
        |p| {
            // SST: one record and CONTINUE records of whole strings (1 character each)
            let strings = 300_000u32;
            let mut globals = Vec::new();
            let mut data = strings.to_le_bytes().to_vec();
            data.extend_from_slice(&strings.to_le_bytes());
            let mut first = true;
            for i in 0..strings {
                data.extend_from_slice(&[1, 0, 0, b'a' + (i % 26) as u8]);
                if data.len() > 8200 || i + 1 == strings {
                    globals.extend(biff(if first { 0x00FC } else { 0x003C }, &data));
                    data.clear();
                    first = false;
                }
            }
            let rows = 85_000u32;
            let mut sheet = Vec::new();
            let mut dims = 0u32.to_le_bytes().to_vec();
            dims.extend_from_slice(&rows.to_le_bytes());
            dims.extend_from_slice(&[0, 0, 10, 0, 0, 0]);
            sheet.extend(biff(0x0200, &dims));
            for r in 0..rows {
                let mut d = (r as u16).to_le_bytes().to_vec();
                d.extend_from_slice(&0u16.to_le_bytes());
                for _ in 0..10 {
                    d.extend_from_slice(&[0, 0, 0x02, 0, 0, 0]); // RK: xf 0, the integer 0
                }
                d.extend_from_slice(&9u16.to_le_bytes());
                sheet.extend(biff(0x00BD, &d));
            }
            std::fs::write(p, xls(&globals, &sheet)).expect("write");
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

/// Builds each case in `dir` and validates it in a child process with the default limits;
/// then times the pre-pass on an ordinary workbook (opening one runs it).
pub(crate) async fn run(dir: &Path, cfg: &Path) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    for (name, what, build) in CASES {
        let ext = match name.split('-').next() {
            Some("ods") => "ods",
            Some("xls") => "xls",
            _ => "xlsx",
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
    let normal = dir.join("prepass-100k.xlsx");
    super::write_xlsx(
        &normal,
        100_000,
        super::Shape {
            absent_every: 0,
            renamed_every: 0,
        },
    )?;
    eprintln!("hostile: the pre-pass on an ordinary 100k-row XLSX…");
    let r = super::child(&["read".to_string(), normal.display().to_string()]).await?;
    out.push(
        json!({ "case": "prepass-100k", "bytes": std::fs::metadata(&normal)?.len(), "read": r }),
    );
    Ok(Value::Array(out))
}

/// The Markdown rows of the results.
pub(crate) fn render(r: &Value) -> String {
    let mut o = String::new();
    for c in r.as_array().into_iter().flatten() {
        if c["case"] == "prepass-100k" {
            let read = &c["read"];
            let open = read["open_seconds"].as_f64().unwrap_or(0.0);
            let all = read["seconds"].as_f64().unwrap_or(0.0);
            o += &format!(
                "| hostile: the pre-pass on an ordinary 100,000-row XLSX ({:.1} MB), reader alone | opening (pre-pass + header) {:.2} s of {:.2} s ({:.0} %), peak RSS {:.0} MiB |\n",
                c["bytes"].as_f64().unwrap_or(0.0) / 1e6,
                open,
                all,
                100.0 * open / all.max(1e-9),
                read["peak_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            );
            continue;
        }
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
