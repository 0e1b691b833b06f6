//! The one integration-test binary: each part of teamsync adds a module here.

mod report_html;
