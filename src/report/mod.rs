//! Everything that leaves teamsync for people to read or to feed back in: sheets written
//! from the tenant or the history (CSV safe to open in Excel, XLSX) and job reports.

pub mod sheet_out;
