//! Machine-readable job exports: the items as CSV or XLSX (either a full report sheet or a
//! retry sheet of the failures), and the job as Fusion's bulk-job-details JSON.
//!
//! The retry sheet is the point of `--failed-only`: an engineer fixes the failed rows and
//! feeds the file straight back to `teamsync apply`. So it is written in the input sheet
//! format, rebuilt from each item's stored desired row (not from the original sheet, which
//! may have changed since), and with the sheet's own conventions: an absent field is an
//! empty cell (keep), `null` is `-` (clear), lists are `;`-joined. CSV cells are
//! neutralised against formula injection by [`sheet_out::neutralise`], whose apostrophe
//! our sheet reader strips again, so the retry sheet reads back with the same values.

use super::format::{changes_of, changes_summary, sheet_cell};
use super::model::{ReportItem, ReportJob};
use super::sheet_out;
use super::ReportError;
use crate::sheet::header::Column;
use rust_xlsxwriter::{Color, Format, FormatBorder, Workbook};
use serde_json::{json, Value};

/// Input-sheet columns a stored desired row can hold, in the order `tenant export` and the
/// README use: every sheet column but `upn`, derived from the attribute table, so a new
/// column reaches the retry sheet (which once dropped `extension`). Only the ones present
/// in at least one exported row are written.
pub(crate) fn data_columns() -> impl Iterator<Item = &'static str> {
    Column::all()
        .filter(|c| *c != Column::Upn)
        .map(Column::name)
}

/// Columns a full report sheet puts before the data columns.
const REPORT_COLUMNS: [&str; 5] = ["upn", "status", "error_code", "error_reason", "changes"];

/// A header and its rows, ready for CSV or XLSX.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Whether a row states `column` at all. `action` is stored on every row; the default
/// (`upsert`) is left out so a retry sheet only grows that column when it matters.
fn states(data: &Value, column: &str) -> bool {
    match data.get(column) {
        None => false,
        Some(Value::String(s)) if column == "action" => s != "upsert",
        Some(_) => true,
    }
}

fn table(items: &[ReportItem], failed_only: bool) -> Table {
    let items: Vec<&ReportItem> = items
        .iter()
        .filter(|i| !failed_only || i.status == "error")
        .collect();
    let data_columns: Vec<&str> = data_columns()
        .filter(|c| items.iter().any(|i| states(&i.data, c)))
        .collect();
    let data_cells = |i: &ReportItem| -> Vec<String> {
        data_columns
            .iter()
            .map(|c| sheet_cell(i.data.get(*c)))
            .collect()
    };
    if failed_only {
        let mut header = vec!["upn".to_string()];
        header.extend(data_columns.iter().map(std::string::ToString::to_string));
        let rows = items
            .iter()
            .map(|i| {
                let mut row = vec![i.upn.clone()];
                row.extend(data_cells(i));
                row
            })
            .collect();
        Table { header, rows }
    } else {
        let mut header: Vec<String> = REPORT_COLUMNS
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        header.extend(data_columns.iter().map(std::string::ToString::to_string));
        let rows = items
            .iter()
            .map(|i| {
                let mut row = vec![
                    i.upn.clone(),
                    i.status.clone(),
                    i.error_code.clone().unwrap_or_default(),
                    i.error_reason.clone().unwrap_or_default(),
                    changes_summary(&changes_of(&i.changes, &i.before)),
                ];
                row.extend(data_cells(i));
                row
            })
            .collect();
        Table { header, rows }
    }
}

/// The job's items as CSV: with `failed_only`, a retry sheet (input format, error items
/// only); otherwise a full report sheet (status, error, changes summary, desired values).
/// Every cell is formula-neutralised. `job` is taken for symmetry with [`items_xlsx`],
/// which names the workbook after it; the CSV itself has no place for it.
pub fn items_csv(_job: &ReportJob, items: &[ReportItem], failed_only: bool) -> Vec<u8> {
    let t = table(items, failed_only);
    let header: Vec<&str> = t.header.iter().map(String::as_str).collect();
    sheet_out::to_csv(&header, &t.rows)
}

/// The same sheet as [`items_csv`] as an XLSX workbook. Cells are text (never formulas),
/// so they need no neutralising; in a retry sheet a leading apostrophe is doubled because
/// our reader strips one from every cell, XLSX included.
pub fn items_xlsx(
    job: &ReportJob,
    items: &[ReportItem],
    failed_only: bool,
) -> Result<Vec<u8>, ReportError> {
    let t = table(items, failed_only);
    let err = |e: rust_xlsxwriter::XlsxError| ReportError::Xlsx(e.to_string());
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(if failed_only { "Retry" } else { "Items" })
        .map_err(err)?;
    let head = Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xE8ECF2))
        .set_border_bottom(FormatBorder::Thin);
    let text = Format::new().set_num_format("@");
    let error = Format::new()
        .set_num_format("@")
        .set_font_color(Color::RGB(0xB42318));
    let status_col = t.header.iter().position(|h| h == "status");
    for (c, h) in t.header.iter().enumerate() {
        ws.write_string_with_format(0, col(c)?, h, &head)
            .map_err(err)?;
    }
    let mut widths: Vec<usize> = t.header.iter().map(|h| h.chars().count()).collect();
    for (r, row) in t.rows.iter().enumerate() {
        let r = u32::try_from(r + 1).map_err(|_| ReportError::Xlsx("too many rows".into()))?;
        for (c, v) in row.iter().enumerate() {
            if v.is_empty() {
                continue;
            }
            let v = if failed_only && v.starts_with('\'') {
                format!("'{v}")
            } else {
                v.clone()
            };
            let fmt = if Some(c) == status_col && v == "error" {
                &error
            } else {
                &text
            };
            ws.write_string_with_format(r, col(c)?, &v, fmt)
                .map_err(err)?;
            if let Some(w) = widths.get_mut(c) {
                *w = (*w).max(v.chars().count());
            }
        }
    }
    for (c, w) in widths.iter().enumerate() {
        ws.set_column_width(col(c)?, (*w).clamp(8, 60) as f64 + 2.0)
            .map_err(err)?;
    }
    ws.set_freeze_panes(1, 0).map_err(err)?;
    if !t.rows.is_empty() && !t.header.is_empty() {
        ws.autofilter(0, 0, t.rows.len() as u32, col(t.header.len() - 1)?)
            .map_err(err)?;
    }
    wb.set_properties(
        &rust_xlsxwriter::DocProperties::new()
            .set_title(&job.title)
            .set_subject(format!("teamsync job {}", job.job_id)),
    );
    wb.save_to_buffer().map_err(err)
}

fn col(c: usize) -> Result<u16, ReportError> {
    u16::try_from(c).map_err(|_| ReportError::Xlsx("too many columns".into()))
}

/// The job in Fusion's "Get bulk job details" shape (`id`, `job_id`, `title`, `kind`,
/// `status`, `total_count`, `success_count`, `job_items[]`, `created_on`, `updated_on`),
/// plus our own counters and provenance (`error_count`, `unchanged_count`, `finished_on`,
/// `tenant`, `source`, `host`, `os_user`, `teamsync_version`) that a Fusion client ignores.
/// Items carry Fusion's `id`, `upn`, `data`, `status`, `created_on`, `updated_on` plus
/// `error_code`, `error_reason`, `changes`, `before` and `attempts`.
/// `job_id` is a string, as the document's table says (its example shows a number).
pub fn job_json(job: &ReportJob, items: &[ReportItem]) -> Value {
    let job_items: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "upn": i.upn,
                "data": i.data,
                "status": i.status,
                "created_on": i.created_on,
                "updated_on": i.updated_on,
                "error_code": i.error_code,
                "error_reason": i.error_reason,
                "changes": i.changes,
                "before": i.before,
                "attempts": i.attempts,
                "note": i.note,
                "outcome": i.outcome(),
            })
        })
        .collect();
    json!({
        "id": job.id,
        "job_id": job.job_id,
        "title": job.title,
        "kind": job.kind,
        "status": job.status,
        "total_count": job.total_count,
        "success_count": job.success_count,
        "error_count": job.error_count,
        "unchanged_count": job.unchanged_count,
        "job_items": job_items,
        "created_on": job.created_on,
        "updated_on": job.updated_on,
        "finished_on": job.finished_on,
        "tenant": job.tenant,
        "source": job.source,
        "host": job.host,
        "os_user": job.os_user,
        "teamsync_version": job.teamsync_version,
        "abort_reason": job.reason,
        "problems": job.problems,
        "outcomes": job.outcomes,
        "backend_bulks": job.backend_bulks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata::{item, items, job, XSS_ATTR, XSS_NAME};
    use calamine::{Data, Reader, Xlsx};

    /// Reads CSV bytes the way our sheet reader treats cells: one leading apostrophe off.
    fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes);
        r.records()
            .map(|rec| {
                rec.unwrap()
                    .iter()
                    .map(|c| c.strip_prefix('\'').unwrap_or(c).to_string())
                    .collect()
            })
            .collect()
    }

    fn raw(bytes: &[u8]) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes);
        r.records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn retry_sheet_has_input_columns_and_rebuilt_values() {
        let out = items_csv(&job(), &items(), true);
        let rows = read_back(&out);
        assert_eq!(
            rows[0].join(","),
            "upn,displayName,number,country,vrp,groups,licenses,customerLicenses,template,action"
        );
        assert_eq!(rows.len(), 3, "one row per error item: {rows:?}");
        assert_eq!(
            rows[1],
            vec![
                "mallory@acme.example",
                XSS_NAME,
                "-",
                "",
                "",
                "All;=cmd|' /C calc'!A0",
                "-",
                "",
                "BE-Best",
                "upsert"
            ],
            "absent = empty, null and [] = '-', lists ';'-joined"
        );
        assert_eq!(
            rows[2],
            vec![
                "eve@acme.example",
                XSS_ATTR,
                "",
                "BE",
                "+SUM(1)",
                "",
                "",
                "-1+2",
                "",
                "disable"
            ]
        );
        // And on disk the risky ones carry the apostrophe.
        let raw = raw(&out);
        assert_eq!(raw[2][4], "'+SUM(1)");
        assert_eq!(raw[2][7], "'-1+2");
    }

    #[test]
    fn retry_sheet_only_has_columns_some_row_states() {
        let mut a = item(
            1,
            "a@x.example",
            "error",
            json!({"upn": "a@x.example", "number": "+3225405200", "action": "upsert"}),
        );
        a.error_code = Some("400".into());
        let b = item(
            2,
            "b@x.example",
            "success",
            json!({"upn": "b@x.example", "vrp": "X", "action": "delete"}),
        );
        let rows = read_back(&items_csv(&job(), &[a, b], true));
        assert_eq!(
            rows,
            vec![vec!["upn", "number"], vec!["a@x.example", "+3225405200"]]
        );
        // No failures at all: a header-only sheet, never an invented row.
        let rows = read_back(&items_csv(&job(), &[], true));
        assert_eq!(rows, vec![vec!["upn"]]);
    }

    #[test]
    fn resource_account_retry_sheet_keeps_account_type() {
        let mut j = job();
        j.kind = "ms_resource_accounts".into();
        let it = item(
            1,
            "cq-sales@x.example",
            "error",
            json!({"upn": "cq-sales@x.example", "displayName": "Sales queue",
                   "accountType": "call-queue", "number": "+3225405299", "action": "upsert"}),
        );
        let rows = read_back(&items_csv(&j, &[it], true));
        assert_eq!(
            rows,
            vec![
                vec!["upn", "displayName", "number", "accountType"],
                vec![
                    "cq-sales@x.example",
                    "Sales queue",
                    "+3225405299",
                    "call-queue"
                ]
            ]
        );
    }

    /// The retry sheet of a PortSIP job keeps `extension`: without it a failed create
    /// could not be retried (PortSIP needs an extension to create a user).
    #[test]
    fn portsip_retry_sheet_keeps_extension() {
        let it = item(
            1,
            "carol.new@contoso.com",
            "error",
            json!({"upn": "carol.new@contoso.com", "displayName": "Carol",
                   "number": "+3225405202", "extension": "0103", "action": "upsert"}),
        );
        let rows = read_back(&items_csv(&job(), std::slice::from_ref(&it), true));
        assert_eq!(
            rows,
            vec![
                vec!["upn", "displayName", "number", "extension"],
                vec!["carol.new@contoso.com", "Carol", "+3225405202", "0103"]
            ]
        );
        let retry = xlsx_cells(items_xlsx(&job(), &[it], true).unwrap(), "Retry");
        assert_eq!(retry[0][3], "extension");
        assert_eq!(retry[1][3], "0103", "leading zero kept: the cell is text");
    }

    #[test]
    fn csv_injection_cases_are_neutralised_and_read_back_unchanged() {
        let hostile = [
            "=cmd|' /C calc'!A0",
            "+SUM(1)",
            "-1+2",
            "@A1",
            "\t=1+1",
            "\r=1+1",
            "'quoted",
        ];
        let mut list = Vec::new();
        for (n, h) in hostile.iter().enumerate() {
            let upn = format!("u{n}@x.example");
            list.push(item(
                n as i64,
                &upn,
                "error",
                json!({"upn": upn, "displayName": h, "number": "+3225405200", "vrp": null}),
            ));
        }
        let out = items_csv(&job(), &list, true);
        let raw = raw(&out);
        assert_eq!(raw[0], vec!["upn", "displayName", "number", "vrp"]);
        for (n, h) in hostile.iter().enumerate() {
            let row = &raw[n + 1];
            assert_eq!(row[1], format!("'{h}"), "{h:?} must be neutralised");
            assert_eq!(row[2], "+3225405200", "an E.164 number stays as it is");
            assert_eq!(row[3], "-", "the clear marker stays as it is");
        }
        let back = read_back(&out);
        for (n, h) in hostile.iter().enumerate() {
            assert_eq!(back[n + 1][1], *h, "reads back unchanged");
        }
        // The full report sheet is neutralised too, error texts included.
        let mut e = item(9, "z@x.example", "error", json!({"upn": "z@x.example"}));
        e.error_reason = Some("=HYPERLINK(\"http://evil\")".into());
        e.error_code = Some("-1".into());
        let raw = self::raw(&items_csv(&job(), &[e], false));
        assert_eq!(raw[1][2], "'-1");
        assert_eq!(raw[1][3], "'=HYPERLINK(\"http://evil\")");
    }

    #[test]
    fn full_report_sheet_has_status_error_and_changes_summary() {
        let rows = read_back(&items_csv(&job(), &items(), false));
        assert_eq!(
            rows[0].join(","),
            "upn,status,error_code,error_reason,changes,displayName,number,country,vrp,groups,\
             licenses,customerLicenses,template,action"
        );
        assert_eq!(rows.len(), 6);
        let alice = &rows[1];
        assert_eq!(alice[0], "alice@acme.example");
        assert_eq!(alice[1], "success");
        assert_eq!(
            alice[4],
            "number: +3225405100 → +3225405200; vrp: (none) → BE-National; groups: +BE Office"
        );
        assert_eq!(alice[6], "+3225405200");
        let mallory = &rows[3];
        assert_eq!(mallory[1], "error");
        assert_eq!(mallory[2], "number_linked");
        assert_eq!(mallory[3], format!("Number already linked {XSS_ATTR}"));
        assert_eq!(mallory[4], "number: +3225405300 → (none)");
        assert_eq!(rows[5][1], "pending");
    }

    fn xlsx_cells(bytes: Vec<u8>, sheet: &str) -> Vec<Vec<String>> {
        let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        let range = wb.worksheet_range(sheet).unwrap();
        range
            .rows()
            .map(|r| {
                r.iter()
                    .map(|c| match c {
                        Data::Empty => String::new(),
                        Data::String(s) => s.clone(),
                        other => panic!("non-text cell {other:?}"),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn xlsx_sheets_hold_the_same_cells_as_text() {
        let mut list = items();
        list[3].data["displayName"] = json!("'quoted");
        let retry = xlsx_cells(items_xlsx(&job(), &list, true).unwrap(), "Retry");
        assert_eq!(retry[0][..3], ["upn", "displayName", "number"]);
        assert_eq!(retry[1][1], XSS_NAME);
        assert_eq!(retry[1][2], "-");
        assert_eq!(retry[2][4], "+SUM(1)", "XLSX text cells are not formulas");
        assert_eq!(
            retry[2][1], "''quoted",
            "a leading apostrophe is doubled: the reader strips one"
        );
        let full = xlsx_cells(items_xlsx(&job(), &items(), false).unwrap(), "Items");
        assert_eq!(full[0][..5], REPORT_COLUMNS);
        assert_eq!(full.len(), 6);
        assert_eq!(full[1][6], "+3225405200");
    }

    #[test]
    fn job_json_matches_the_fusion_bulk_details_example() {
        let doc: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/report/fusion-bulk-details.json"
        ))
        .unwrap();
        let s = |v: &Value| v.as_str().unwrap().to_string();
        let doc_job = ReportJob {
            id: doc["id"].as_i64().unwrap(),
            job_id: doc["job_id"].to_string(),
            title: s(&doc["title"]),
            kind: s(&doc["kind"]),
            status: s(&doc["status"]),
            total_count: doc["total_count"].as_u64().unwrap(),
            success_count: doc["success_count"].as_u64().unwrap(),
            created_on: s(&doc["created_on"]),
            updated_on: s(&doc["updated_on"]),
            ..job()
        };
        let doc_items: Vec<ReportItem> = doc["job_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| ReportItem {
                id: i["id"].as_i64().unwrap(),
                upn: s(&i["upn"]),
                status: s(&i["status"]),
                data: i["data"].clone(),
                changes: json!([]),
                before: json!({}),
                error_code: None,
                error_reason: None,
                attempts: 1,
                created_on: s(&i["created_on"]),
                updated_on: s(&i["updated_on"]),
                note: None,
                action: None,
            })
            .collect();
        let ours = job_json(&doc_job, &doc_items);
        // Every key of the document's object is there, with the same value, except
        // job_id which is a string (the document's table) where the example has a number.
        for (k, v) in doc.as_object().unwrap() {
            match k.as_str() {
                "job_id" => assert_eq!(ours[k], json!("1722601865")),
                "job_items" => {}
                _ => assert_eq!(&ours[k], v, "{k}"),
            }
        }
        let (ours_items, doc_items) = (
            ours["job_items"].as_array().unwrap(),
            doc["job_items"].as_array().unwrap(),
        );
        assert_eq!(ours_items.len(), doc_items.len());
        for (o, d) in ours_items.iter().zip(doc_items) {
            for (k, v) in d.as_object().unwrap() {
                assert_eq!(&o[k], v, "item key {k}");
            }
            for k in [
                "error_code",
                "error_reason",
                "changes",
                "before",
                "attempts",
            ] {
                assert!(o.get(k).is_some(), "item has {k}");
            }
        }
        // Our additions, and nothing else.
        let mut keys: Vec<&str> = ours
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "abort_reason",
                "backend_bulks",
                "created_on",
                "error_count",
                "finished_on",
                "host",
                "id",
                "job_id",
                "job_items",
                "kind",
                "os_user",
                "outcomes",
                "problems",
                "source",
                "status",
                "success_count",
                "teamsync_version",
                "tenant",
                "title",
                "total_count",
                "unchanged_count",
                "updated_on"
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Whatever a cell holds, the retry sheet reads back to it (one apostrophe off),
        /// and no cell on disk starts like a formula unless it is an E.164 number or `-`.
        #[test]
        fn retry_sheet_round_trips_any_text(
            name in "[=+\\-@\t\r' ]{0,2}\\PC{0,12}",
            vrp in proptest::option::of("[=+\\-@'a-z0-9 ]{0,6}"),
        ) {
            let mut data = json!({"upn": "p@x.example", "displayName": name});
            if let Some(v) = &vrp {
                data["vrp"] = json!(v);
            }
            let it = item(1, "p@x.example", "error", data.clone());
            let out = items_csv(&job(), &[it], true);
            let back = read_back(&out);
            proptest::prop_assert_eq!(&back[1][1], &sheet_cell(data.get("displayName")));
            if vrp.is_some() {
                proptest::prop_assert_eq!(&back[1][2], &sheet_cell(data.get("vrp")));
            }
            for cell in &raw(&out)[1] {
                let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
                proptest::prop_assert!(
                    !risky
                        || cell == "-"
                        || crate::model::E164::parse_canonical(cell).is_ok(),
                    "formula-like cell on disk: {:?}", cell
                );
            }
        }
    }
}
