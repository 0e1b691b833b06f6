//! Being written; see DESIGN.md.
