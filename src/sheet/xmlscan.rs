//! A small streaming XML tokenizer for the workbook pre-pass (see `zipguard`).
//!
//! Why not quick-xml, which calamine uses: quick-xml hands out whole events, so a 2 GB text
//! node or tag is 2 GB in its buffer before anyone can look at it — exactly the memory the
//! pre-pass exists to protect. This scanner is fed inflated bytes in chunks and never holds
//! more than one tag (capped) and a few bytes of an entity: text is reported in pieces with
//! its character count, so a cell can be stopped at `max_cell_chars` while it is being read.
//!
//! It is not a validating parser. It knows enough to follow structure the way quick-xml
//! (as calamine configures it) will: elements, attribute quoting, comments, processing
//! instructions and CDATA. A DOCTYPE is refused: no OOXML or ODF part has one, and an
//! internal subset is the classic way to smuggle entity expansion into an XML reader.

use super::SheetError;

/// Longest tag, comment, processing instruction or CDATA section, in bytes. quick-xml
/// buffers each of these whole; real ones are a few hundred bytes.
pub(super) const MARKUP_MAX: usize = 64 * 1024;

/// Longest entity reference (`&#x10FFFF;` is 10 bytes; named ones are shorter).
const ENTITY_MAX: usize = 32;

/// One element tag as the scanner sees it.
pub(super) struct Tag<'a> {
    /// Local name (namespace prefix dropped).
    pub local: &'a [u8],
    /// Qualified name as written (`table:table-cell`).
    pub qname: &'a [u8],
    pub closing: bool,
    pub self_closing: bool,
    /// The raw tag text after the name, for attribute look-ups.
    attrs: &'a [u8],
}

impl Tag<'_> {
    /// Raw value of an attribute given by its qualified name (`r`, `table:number-rows-repeated`).
    /// Entities are not decoded (see [`unescape`]).
    pub(super) fn attr(&self, qname: &[u8]) -> Option<&[u8]> {
        let mut rest = self.attrs;
        loop {
            // skip whitespace
            let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
            rest = &rest[start..];
            let eq = rest.iter().position(|b| *b == b'=')?;
            let name = trim_ascii(&rest[..eq]);
            let after = trim_start(&rest[eq + 1..]);
            let quote = *after.first()?;
            if quote != b'"' && quote != b'\'' {
                return None;
            }
            let value_len = after[1..].iter().position(|b| *b == quote)?;
            let value = &after[1..=value_len];
            if name == qname {
                return Some(value);
            }
            rest = &after[1 + value_len + 1..];
        }
    }

    /// An attribute parsed as an unsigned integer; `None` when absent or not a number.
    pub(super) fn attr_u64(&self, qname: &[u8]) -> Option<u64> {
        std::str::from_utf8(self.attr(qname)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn trim_start(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    &b[s..]
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let b = trim_start(b);
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &b[..e]
}

/// Why a scan stopped before the end of its part.
#[derive(Debug)]
pub(super) enum Halt {
    /// The checker has seen what it needed (e.g. the first over-long shared string).
    Done,
    Fail(SheetError),
}

impl From<SheetError> for Halt {
    fn from(e: SheetError) -> Halt {
        Halt::Fail(e)
    }
}

/// What a part's checker does with the scanner's events.
pub(super) trait Sink {
    fn tag(&mut self, tag: &Tag<'_>) -> Result<(), Halt>;
    /// A piece of text between tags: raw bytes (entities undecoded) and the number of
    /// characters they stand for (an entity counts as one). A text node may arrive in
    /// several pieces; the sink sees each piece before the scanner's own cap applies, so
    /// it can name the cell that is too long.
    fn text(&mut self, raw: &[u8], chars: u64) -> Result<(), Halt>;
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// Just after `<`: what follows is not known yet.
    Open,
    Element,
    Comment,
    Cdata,
    Pi,
}

/// The tokenizer's state between chunks.
pub(super) struct Scanner {
    part: String,
    /// Inside markup (`<` seen, `>` not yet): its bytes so far, without the `<`.
    markup: Option<Markup>,
    buf: Vec<u8>,
    /// Inside an element tag: the open quote of an attribute value, or 0.
    quote: u8,
    /// Inside an entity reference in text: bytes since the `&`.
    entity: Option<usize>,
    /// Characters in the current text node (between two pieces of markup).
    run: u64,
    /// Longest text node accepted anywhere in the part, in characters.
    run_max: u64,
}

impl Scanner {
    /// `part` names the zip entry in errors; `run_max` caps any one text node.
    pub(super) fn new(part: &str, run_max: u64) -> Scanner {
        Scanner {
            part: part.to_string(),
            markup: None,
            buf: Vec::with_capacity(256),
            quote: 0,
            entity: None,
            run: 0,
            run_max,
        }
    }

    fn refuse(&self, what: String) -> SheetError {
        SheetError::Markup {
            part: self.part.clone(),
            what,
        }
    }

    /// Feeds the next chunk of the part.
    pub(super) fn feed(&mut self, mut chunk: &[u8], sink: &mut impl Sink) -> Result<(), Halt> {
        while !chunk.is_empty() {
            if self.markup.is_some() {
                chunk = self.feed_markup(chunk, sink)?;
            } else {
                chunk = self.feed_text(chunk, sink)?;
            }
        }
        Ok(())
    }

    /// The part ended: an unfinished tag or entity is an error (quick-xml says so too).
    pub(super) fn finish(&self) -> Result<(), SheetError> {
        if self.markup.is_some() {
            return Err(SheetError::Corrupt {
                format: super::Format::Xlsx,
                message: format!("{}: the part ends inside a tag", self.part),
            });
        }
        Ok(())
    }

    fn feed_text<'c>(&mut self, chunk: &'c [u8], sink: &mut impl Sink) -> Result<&'c [u8], Halt> {
        let end = chunk.iter().position(|b| *b == b'<');
        let text = &chunk[..end.unwrap_or(chunk.len())];
        if !text.is_empty() {
            let chars = self.count_chars(text)?;
            sink.text(text, chars)?;
            self.run = self.run.saturating_add(chars);
            if self.run > self.run_max {
                return Err(self
                    .refuse(format!(
                        "a text of more than {} characters between two tags",
                        self.run_max
                    ))
                    .into());
            }
        }
        match end {
            Some(i) => {
                if self.entity.is_some() {
                    return Err(self
                        .refuse("an entity reference without its `;`".into())
                        .into());
                }
                self.markup = Some(Markup::Open);
                self.buf.clear();
                self.quote = 0;
                self.run = 0;
                Ok(&chunk[i + 1..])
            }
            None => Ok(&[]),
        }
    }

    /// Characters in a piece of text: UTF-8 lead bytes, with each entity reference counted
    /// once (its bytes are skipped), carrying an unfinished entity to the next piece.
    fn count_chars(&mut self, mut text: &[u8]) -> Result<u64, SheetError> {
        let mut chars = 0u64;
        loop {
            if let Some(len) = self.entity {
                if let Some(i) = text.iter().position(|b| *b == b';') {
                    if len + i > ENTITY_MAX {
                        return Err(self.refuse("an entity reference that never ends".into()));
                    }
                    self.entity = None;
                    chars += 1;
                    text = &text[i + 1..];
                } else {
                    if len + text.len() > ENTITY_MAX {
                        return Err(self.refuse("an entity reference that never ends".into()));
                    }
                    self.entity = Some(len + text.len());
                    return Ok(chars);
                }
            }
            if let Some(i) = text.iter().position(|b| *b == b'&') {
                chars += lead_bytes(&text[..i]);
                self.entity = Some(0);
                text = &text[i + 1..];
            } else {
                chars += lead_bytes(text);
                return Ok(chars);
            }
        }
    }

    fn feed_markup<'c>(&mut self, chunk: &'c [u8], sink: &mut impl Sink) -> Result<&'c [u8], Halt> {
        let mut i = 0;
        while i < chunk.len() {
            let kind = self.markup.unwrap_or(Markup::Element);
            if kind == Markup::Open {
                self.buf.push(chunk[i]);
                i += 1;
                self.classify()?;
                continue;
            }
            // Find the next byte that can end the markup (or toggle a quote) in one step.
            let rest = &chunk[i..];
            let stop = if kind == Markup::Element {
                rest.iter()
                    .position(|b| *b == b'>' || *b == b'"' || *b == b'\'')
            } else {
                rest.iter().position(|b| *b == b'>')
            };
            let Some(p) = stop else {
                self.push_markup(rest)?;
                return Ok(&[]);
            };
            let b = rest[p];
            self.push_markup(&rest[..p])?;
            i += p + 1;
            if b != b'>' {
                // a quote inside an element tag
                self.buf.push(b);
                if self.quote == 0 {
                    self.quote = b;
                } else if self.quote == b {
                    self.quote = 0;
                }
                continue;
            }
            if kind == Markup::Element && self.quote != 0 {
                self.buf.push(b);
                continue;
            }
            let done = match kind {
                Markup::Comment => self.buf.len() >= 5 && self.buf.ends_with(b"--"),
                Markup::Cdata => self.buf.len() >= 10 && self.buf.ends_with(b"]]"),
                Markup::Pi => self.buf.len() >= 2 && self.buf.ends_with(b"?"),
                Markup::Element | Markup::Open => true,
            };
            if !done {
                self.buf.push(b);
                continue;
            }
            if kind == Markup::Cdata {
                // CDATA is text to a reader (calamine drops it); count it as such.
                let body = self.buf[8..self.buf.len() - 2].to_vec();
                let chars = lead_bytes(&body);
                sink.text(&body, chars)?;
            } else if kind == Markup::Element {
                self.element(sink)?;
            }
            self.markup = None;
            self.buf.clear();
            return Ok(&chunk[i..]);
        }
        Ok(&[])
    }

    fn push_markup(&mut self, bytes: &[u8]) -> Result<(), SheetError> {
        if self.buf.len() + bytes.len() > MARKUP_MAX {
            return Err(self.refuse(format!(
                "a tag, comment or CDATA section longer than {MARKUP_MAX} bytes"
            )));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// Decides what kind of markup starts once enough bytes after `<` are known.
    fn classify(&mut self) -> Result<(), SheetError> {
        let b = &self.buf[..];
        let kind = match b[0] {
            b'?' => Some(Markup::Pi),
            b'!' => {
                if b.starts_with(b"!--") {
                    Some(Markup::Comment)
                } else if b.starts_with(b"![CDATA[") {
                    Some(Markup::Cdata)
                } else if b"!--".starts_with(b) || b"![CDATA[".starts_with(b) {
                    None // not known yet
                } else {
                    return Err(self.refuse(
                        "a DOCTYPE or other declaration, which workbook parts never have".into(),
                    ));
                }
            }
            _ => Some(Markup::Element),
        };
        if let Some(k) = kind {
            self.markup = Some(k);
            if k == Markup::Element {
                // the byte already in `buf` may be a quote only in broken XML; track anyway
                let first = self.buf[0];
                if first == b'"' || first == b'\'' {
                    self.quote = first;
                }
            }
        }
        Ok(())
    }

    fn element(&mut self, sink: &mut impl Sink) -> Result<(), Halt> {
        let raw = &self.buf[..];
        let closing = raw.first() == Some(&b'/');
        let body = if closing { &raw[1..] } else { raw };
        let self_closing = !closing && body.ends_with(b"/");
        let body = if self_closing {
            &body[..body.len() - 1]
        } else {
            body
        };
        let name_end = body
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/')
            .unwrap_or(body.len());
        let qname = &body[..name_end];
        let local = match qname.iter().position(|b| *b == b':') {
            Some(i) => &qname[i + 1..],
            None => qname,
        };
        sink.tag(&Tag {
            local,
            qname,
            closing,
            self_closing,
            attrs: &body[name_end..],
        })
    }
}

/// Characters of raw XML text (an attribute value): UTF-8 characters, an entity counted once.
pub(super) fn text_chars(raw: &[u8]) -> u64 {
    let mut chars = 0;
    let mut rest = raw;
    while let Some(i) = rest.iter().position(|b| *b == b'&') {
        chars += lead_bytes(&rest[..i]) + 1;
        rest = match rest[i..].iter().position(|b| *b == b';') {
            Some(j) => &rest[i + j + 1..],
            None => &[],
        };
    }
    chars + lead_bytes(rest)
}

/// UTF-8 characters in bytes: every byte that is not a continuation byte.
fn lead_bytes(b: &[u8]) -> u64 {
    b.iter().filter(|&&c| (c & 0xC0) != 0x80).count() as u64
}

/// Decodes the five predefined entities and character references, as quick-xml's
/// `unescape` does; `None` for anything else (quick-xml refuses those too).
pub(super) fn unescape(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';')?;
        let name = &after[..end];
        let ch = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()?
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()?
                } else {
                    return None;
                };
                char::from_u32(code)?
            }
        };
        out.push(ch);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record {
        events: Vec<String>,
        chars: u64,
    }

    impl Sink for Record {
        fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
            let mut e = String::new();
            if t.closing {
                e.push('/');
            }
            e.push_str(&String::from_utf8_lossy(t.qname));
            if let Some(r) = t.attr(b"r") {
                e.push_str(&format!("[r={}]", String::from_utf8_lossy(r)));
            }
            if t.self_closing {
                e.push('/');
            }
            self.events.push(e);
            Ok(())
        }
        fn text(&mut self, raw: &[u8], chars: u64) -> Result<(), Halt> {
            self.chars += chars;
            self.events
                .push(format!("'{}'", String::from_utf8_lossy(raw)));
            Ok(())
        }
    }

    /// Feeds `xml` in chunks of every size from 1 byte up, so chunk borders fall everywhere.
    fn scan_all_chunkings(xml: &[u8]) -> Vec<Result<(Vec<String>, u64), Halt>> {
        (1..=xml.len().max(1))
            .map(|size| {
                let mut s = Scanner::new("p.xml", 100);
                let mut r = Record::default();
                for c in xml.chunks(size) {
                    s.feed(c, &mut r)?;
                }
                s.finish()?;
                // text pieces differ by chunking; join adjacent ones
                let mut joined: Vec<String> = Vec::new();
                for e in r.events {
                    if let Some(piece) = e.strip_prefix('\'') {
                        if let Some(last) = joined.last_mut().filter(|l| l.starts_with('\'')) {
                            last.pop();
                            last.push_str(piece);
                            continue;
                        }
                    }
                    joined.push(e);
                }
                Ok((joined, r.chars))
            })
            .collect()
    }

    #[test]
    fn tags_text_and_markup_whatever_the_chunking() {
        let xml = br#"<?xml version="1.0"?><!-- a > b --><x:sst a='1>2' r="A1"><si><t>caf&#233; &amp; r&eacute;</t></si><![CDATA[<no>]]><c r="B2"/></x:sst>"#;
        for r in scan_all_chunkings(xml) {
            let (events, chars) = r.unwrap();
            assert_eq!(
                events,
                vec![
                    "x:sst[r=A1]",
                    "si",
                    "t",
                    "'caf&#233; &amp; r&eacute;'",
                    "/t",
                    "/si",
                    "'<no>'",
                    "c[r=B2]/",
                    "/x:sst"
                ]
            );
            // "café & ré" = 9 characters, then "<no>" = 4
            assert_eq!(chars, 13);
        }
    }

    #[test]
    fn caps_refuse_long_text_tags_entities_and_doctype() {
        let long_text = format!("<a>{}</a>", "é".repeat(101));
        let long_tag = format!("<a b=\"{}\"/>", "x".repeat(MARKUP_MAX));
        let long_entity = format!("<a>&{}</a>", "x".repeat(40));
        for (xml, want) in [
            (long_text.as_str(), "more than 100 characters"),
            (long_tag.as_str(), "longer than 65536 bytes"),
            (long_entity.as_str(), "entity reference"),
            ("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", "DOCTYPE"),
            ("<a>&amp</a>", "entity"),
        ] {
            let mut s = Scanner::new("p.xml", 100);
            let err = match s
                .feed(xml.as_bytes(), &mut Record::default())
                .and_then(|()| Ok(s.finish()?))
            {
                Err(Halt::Fail(e)) => e.to_string(),
                other => panic!("{other:?}"),
            };
            assert!(
                err.contains(want) && err.contains("p.xml"),
                "{xml:.40}: {err}"
            );
        }
        // 100 characters exactly is fine, multi-byte ones count once
        let ok = format!("<a>{}</a>", "é".repeat(100));
        let mut s = Scanner::new("p.xml", 100);
        s.feed(ok.as_bytes(), &mut Record::default()).unwrap();
    }

    #[test]
    fn attributes() {
        let mut r = Record::default();
        let mut s = Scanner::new("p", 10);
        struct Attrs(Vec<Option<String>>);
        impl Sink for Attrs {
            fn tag(&mut self, t: &Tag<'_>) -> Result<(), Halt> {
                for a in [&b"name"[..], b"r:id", b"id", b"x"] {
                    self.0
                        .push(t.attr(a).map(|v| String::from_utf8_lossy(v).into()));
                }
                Ok(())
            }
            fn text(&mut self, _: &[u8], _: u64) -> Result<(), Halt> {
                Ok(())
            }
        }
        let mut a = Attrs(Vec::new());
        s.feed(
            br#"<sheet name="A &amp; B" sheetId="1"  r:id = 'rId1'/>"#,
            &mut a,
        )
        .unwrap();
        assert_eq!(
            a.0,
            vec![
                Some("A &amp; B".to_string()),
                Some("rId1".to_string()),
                None,
                None
            ]
        );
        s.feed(b"<a>x</a>", &mut r).unwrap();
        assert_eq!(
            unescape(b"A &amp; B &#x41;&#66;").as_deref(),
            Some("A & B AB")
        );
        assert_eq!(unescape(b"&bogus;"), None);
    }
}
