//! Spreadsheets in and out: CSV and XLSX read into a table of text cells
//! (with each cell's place, as the operator's editor shows it, for errors)
//! and tables written as CSV or XLSX. No asset logic: matching rows to
//! assets and checking fields is the importer's.
//!
//! Formulas in XLSX files are never evaluated: the value the spreadsheet
//! program cached in the file is read. Text that looks like a formula is
//! written as text (XLSX) or behind a `'` (CSV, read back without it), so
//! an export opened in a spreadsheet program runs nothing.

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use chrono::NaiveDate;
use serde_json::Value;
use thiserror::Error;

/// The most rows a sheet may have (besides its header).
pub const MAX_ROWS: usize = 200_000;
/// The longest cell, in characters (Excel's own limit).
pub const MAX_CELL: usize = 32_767;

/// Why a file could not be read or written; the message names the place.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SheetError {
    /// Something at a place in the file.
    #[error("{place}: {message}")]
    At {
        /// `line 7, column 4 (purchase_date)` or `sheet "assets", row 7,
        /// column D (purchase_date)`.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// The file as a whole.
    #[error("{0}")]
    File(String),
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its number as the operator's editor shows it (the header is 1).
    pub number: usize,
    /// Its cells, as many as the header has.
    pub cells: Vec<String>,
}

/// A table read from a file: the header and the rows, cells as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The sheet's name (XLSX), none for CSV.
    pub sheet: Option<String>,
    /// The column names, trimmed and lower-cased.
    pub headers: Vec<String>,
    /// The rows.
    pub rows: Vec<Row>,
}

/// `A`, `B`, … `Z`, `AA`, … for a zero-based column.
pub fn column_letters(col: usize) -> String {
    let mut out = Vec::new();
    let mut n = col + 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl Table {
    /// Where a cell is, as errors name it: `line 7, column 4 (purchase_date)`
    /// for CSV, `sheet "assets", row 7, column D (purchase_date)` for XLSX.
    pub fn place(&self, row: &Row, col: usize) -> String {
        self.place_at(row.number, col)
    }

    fn place_at(&self, number: usize, col: usize) -> String {
        let header = self
            .headers
            .get(col)
            .filter(|h| !h.is_empty())
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        match &self.sheet {
            Some(s) => format!(
                "sheet {s:?}, row {number}, column {}{header}",
                column_letters(col)
            ),
            None => format!("line {number}, column {}{header}", col + 1),
        }
    }

    fn error(&self, number: usize, col: usize, message: impl Into<String>) -> SheetError {
        SheetError::At {
            place: self.place_at(number, col),
            message: message.into(),
        }
    }

    /// Checks and sets the header; names an empty or repeated column.
    fn set_headers(&mut self, raw: Vec<String>) -> Result<(), SheetError> {
        // Trailing empty header cells (a sheet formatted wider) are dropped.
        let mut headers: Vec<String> = raw.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
        while headers.last().is_some_and(String::is_empty) {
            headers.pop();
        }
        if headers.is_empty() {
            return Err(SheetError::File(
                "the first row is empty: it must name the columns".into(),
            ));
        }
        self.headers = headers.clone();
        for (i, h) in headers.iter().enumerate() {
            if h.is_empty() {
                return Err(self.error(1, i, "the column has no name"));
            }
            if let Some(first) = headers[..i].iter().position(|o| o == h) {
                return Err(self.error(
                    1,
                    i,
                    format!("{h:?} is also column {}", self.column_name(first)),
                ));
            }
        }
        Ok(())
    }

    fn column_name(&self, col: usize) -> String {
        match self.sheet {
            Some(_) => column_letters(col),
            None => (col + 1).to_string(),
        }
    }
}

/// The characters that make a spreadsheet program read text as a formula.
fn formula_like(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Reads a CSV file: UTF-8 (a byte-order mark is skipped), a header row
/// first, every row as wide as the header; cells trimmed, empty lines
/// skipped.
pub fn read_csv(bytes: &[u8]) -> Result<Table, SheetError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut table = Table {
        sheet: None,
        headers: Vec::new(),
        rows: Vec::new(),
    };
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    // Line numbers from byte offsets (the reader does not count blank
    // lines): newlines before the offset, counted on from the last one.
    let (mut counted_to, mut lines_before) = (0usize, 0usize);
    let mut line_at = |byte: usize| {
        let end = byte.min(bytes.len());
        if end >= counted_to {
            lines_before += bytes[counted_to..end]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            counted_to = end;
        }
        lines_before + 1
    };
    loop {
        let line = line_at(rdr.position().byte() as usize);
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(SheetError::At {
                    place: format!("line {line}"),
                    message: e.to_string(),
                });
            }
        }
        let number = record.position().map_or(line, |p| {
            // A record's position is where the blank lines before it begin.
            let mut at = p.byte() as usize;
            while bytes.get(at).is_some_and(|b| matches!(b, b'\n' | b'\r')) {
                at += 1;
            }
            line_at(at)
        });
        let mut cells = Vec::with_capacity(record.len());
        for (i, raw) in record.iter().enumerate() {
            let text = std::str::from_utf8(raw).map_err(|_| {
                table.error(number, i, "not UTF-8 text (save the file as UTF-8 CSV)")
            })?;
            let text = text.trim();
            if text.chars().count() > MAX_CELL {
                return Err(table.error(number, i, format!("longer than {MAX_CELL} characters")));
            }
            // The guard an export put in front of formula-like text.
            let text = match text.strip_prefix('\'') {
                Some(rest) if formula_like(rest) => rest,
                _ => text,
            };
            cells.push(text.to_owned());
        }
        if cells.iter().all(String::is_empty) {
            continue;
        }
        if first {
            first = false;
            table.set_headers(cells)?;
            continue;
        }
        let width = table.headers.len();
        if cells.len() > width && cells[width..].iter().any(|c| !c.is_empty()) {
            return Err(table.error(
                number,
                width,
                format!("{} fields where the header has {width}", cells.len()),
            ));
        }
        if cells.len() < width {
            return Err(SheetError::At {
                place: format!("line {number}"),
                message: format!("{} fields where the header has {width}", cells.len()),
            });
        }
        cells.truncate(width);
        if table.rows.len() == MAX_ROWS {
            return Err(SheetError::At {
                place: format!("line {number}"),
                message: format!("more than {MAX_ROWS} rows; split the file"),
            });
        }
        table.rows.push(Row { number, cells });
    }
    if first {
        return Err(SheetError::File(
            "the file is empty: the first row must name the columns".into(),
        ));
    }
    Ok(table)
}

/// A number as the shortest text that reads back as it (`12`, not `12.0`).
fn number_text(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Reads the first worksheet of an XLSX file (the header is its first
/// non-empty row).
pub fn read_xlsx(bytes: &[u8]) -> Result<Table, SheetError> {
    let mut book = Xlsx::new(Cursor::new(bytes))
        .map_err(|e| SheetError::File(format!("not an XLSX workbook: {e}")))?;
    let name = book
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| SheetError::File("the workbook has no sheet".into()))?;
    let range = book
        .worksheet_range(&name)
        .map_err(|e| SheetError::File(format!("sheet {name:?}: {e}")))?;
    let mut table = Table {
        sheet: Some(name.clone()),
        headers: Vec::new(),
        rows: Vec::new(),
    };
    let Some((row0, col0)) = range.start() else {
        return Err(SheetError::File(format!(
            "sheet {name:?} is empty: its first row must name the columns"
        )));
    };
    let col0 = col0 as usize;
    let mut first = true;
    for (i, cells) in range.rows().enumerate() {
        let number = row0 as usize + i + 1;
        let mut texts = vec![String::new(); col0];
        for (j, cell) in cells.iter().enumerate() {
            let col = col0 + j;
            let text = match cell {
                Data::Empty => String::new(),
                Data::String(s) => s.trim().to_owned(),
                Data::Int(n) => n.to_string(),
                Data::Float(f) => number_text(*f),
                Data::Bool(b) => b.to_string(),
                Data::DateTime(d) => match d.as_datetime() {
                    Some(dt) if dt.time() == chrono::NaiveTime::MIN => dt.date().to_string(),
                    Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S").to_string(),
                    None => number_text(d.as_f64()),
                },
                Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
                Data::Error(e) => {
                    return Err(table.error(number, col, format!("the cell holds the error {e}")));
                }
            };
            if text.chars().count() > MAX_CELL {
                return Err(table.error(number, col, format!("longer than {MAX_CELL} characters")));
            }
            texts.push(text);
        }
        if texts.iter().all(String::is_empty) {
            continue;
        }
        if first {
            first = false;
            table.set_headers(texts)?;
            continue;
        }
        let width = table.headers.len();
        if let Some(extra) = texts.iter().skip(width).position(|c| !c.is_empty()) {
            return Err(table.error(
                number,
                width + extra,
                "a value right of the last named column",
            ));
        }
        texts.resize(width, String::new());
        if table.rows.len() == MAX_ROWS {
            return Err(SheetError::At {
                place: format!("sheet {name:?}, row {number}"),
                message: format!("more than {MAX_ROWS} rows; split the file"),
            });
        }
        table.rows.push(Row {
            number,
            cells: texts,
        });
    }
    if first {
        return Err(SheetError::File(format!(
            "sheet {name:?} is empty: its first row must name the columns"
        )));
    }
    Ok(table)
}

/// One cell to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing.
    Empty,
    /// Text (never a formula).
    Text(String),
    /// A whole number.
    Integer(i64),
    /// A number.
    Number(f64),
    /// An amount with two decimals, as text (`1234.50`).
    Decimal(String),
    /// A date.
    Date(NaiveDate),
    /// True or false.
    Bool(bool),
}

/// A JSON value as a cell: `YYYY-MM-DD` text as a date, numbers as
/// numbers, lists and objects as compact JSON text.
pub fn to_cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Empty,
        Value::Bool(b) => Cell::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cell::Integer(i),
            None => n.as_f64().map_or(Cell::Empty, Cell::Number),
        },
        Value::String(s) => match crate::fields::parse_date(s) {
            Some(d) if s.len() == 10 => Cell::Date(d),
            _ => Cell::Text(s.clone()),
        },
        other => Cell::Text(other.to_string()),
    }
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Text(t) if formula_like(t) => format!("'{t}"),
        Cell::Text(t) | Cell::Decimal(t) => t.clone(),
        Cell::Integer(i) => i.to_string(),
        Cell::Number(f) => number_text(*f),
        Cell::Date(d) => d.to_string(),
        Cell::Bool(b) => b.to_string(),
    }
}

/// Writes a table as CSV (RFC 4180 quoting, formula-like text behind a
/// `'`).
pub fn write_csv(headers: &[String], rows: &[Vec<Cell>]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(headers);
    for r in rows {
        let _ = w.write_record(r.iter().map(cell_text));
    }
    w.into_inner().unwrap_or_default()
}

fn xlsx_err(e: rust_xlsxwriter::XlsxError) -> SheetError {
    SheetError::File(format!("writing the workbook: {e}"))
}

/// Writes a table as an XLSX workbook of one sheet: the header bold,
/// frozen and filterable, numbers and dates typed, amounts with two
/// decimals, text always as text.
pub fn write_xlsx(
    sheet: &str,
    headers: &[String],
    rows: &[Vec<Cell>],
) -> Result<Vec<u8>, SheetError> {
    use rust_xlsxwriter::{Format, Workbook};
    if rows.len() >= 1_048_575 {
        return Err(SheetError::File(format!(
            "{} rows do not fit in one sheet",
            rows.len()
        )));
    }
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    ws.set_name(sheet).map_err(xlsx_err)?;
    let bold = Format::new().set_bold();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let money = Format::new().set_num_format("#,##0.00");
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for (c, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, c as u16, h, &bold)
            .map_err(xlsx_err)?;
    }
    for (r, row) in rows.iter().enumerate() {
        let r = (r + 1) as u32;
        for (c, cell) in row.iter().enumerate() {
            let col = c as u16;
            let shown = match cell {
                Cell::Empty => 0,
                Cell::Text(t) => {
                    let t: String = t.chars().take(MAX_CELL).collect();
                    ws.write_string(r, col, &t).map_err(xlsx_err)?;
                    t.chars().count()
                }
                Cell::Integer(i) => {
                    ws.write_number(r, col, *i as f64).map_err(xlsx_err)?;
                    i.to_string().len()
                }
                Cell::Number(f) => {
                    ws.write_number(r, col, *f).map_err(xlsx_err)?;
                    number_text(*f).len()
                }
                Cell::Decimal(t) => {
                    match t.parse::<f64>() {
                        Ok(f) => ws.write_number_with_format(r, col, f, &money),
                        Err(_) => ws.write_string(r, col, t),
                    }
                    .map_err(xlsx_err)?;
                    t.len() + 2
                }
                Cell::Date(d) => {
                    ws.write_datetime_with_format(r, col, d, &date)
                        .map_err(xlsx_err)?;
                    10
                }
                Cell::Bool(b) => {
                    ws.write_boolean(r, col, *b).map_err(xlsx_err)?;
                    5
                }
            };
            if let Some(w) = widths.get_mut(c) {
                *w = (*w).max(shown);
            }
        }
    }
    for (c, w) in widths.iter().enumerate() {
        ws.set_column_width(c as u16, (*w).clamp(6, 50) as f64 + 2.0)
            .map_err(xlsx_err)?;
    }
    if !headers.is_empty() {
        ws.set_freeze_panes(1, 0).map_err(xlsx_err)?;
        ws.autofilter(0, 0, rows.len() as u32, (headers.len() - 1) as u16)
            .map_err(xlsx_err)?;
    }
    book.save_to_buffer().map_err(xlsx_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn csv_reads_with_places_and_guards() {
        let t = read_csv(b"\xef\xbb\xbfSerial , Site\n S1 ,FRA1\n\n\"S,2\",\n").expect("csv");
        assert_eq!(t.headers, ["serial", "site"]);
        assert_eq!(
            t.rows[0],
            Row {
                number: 2,
                cells: h(&["S1", "FRA1"])
            }
        );
        assert_eq!(
            t.rows[1],
            Row {
                number: 4,
                cells: h(&["S,2", ""])
            }
        );
        assert_eq!(t.place(&t.rows[1], 1), "line 4, column 2 (site)");
        for (text, want) in [
            (
                &b"a,b\n1,2,3\n"[..],
                "line 2, column 3: 3 fields where the header has 2",
            ),
            (b"a,b\n1\n", "line 2: 1 fields where the header has 2"),
            (
                b"a,a\n1,2\n",
                "line 1, column 2 (a): \"a\" is also column 1",
            ),
            (b"a,,b\n", "line 1, column 2: the column has no name"),
            (b"a\n\xff\xfe\n", "line 2, column 1 (a): not UTF-8"),
            (b"", "empty"),
        ] {
            let e = read_csv(text).expect_err("bad").to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
        let long = format!("a\n{}\n", "x".repeat(MAX_CELL + 1));
        assert!(
            read_csv(long.as_bytes())
                .expect_err("long")
                .to_string()
                .contains("longer than")
        );
    }

    #[test]
    fn csv_round_trips_formula_looking_text_as_text() {
        let rows = vec![vec![
            Cell::Text("=1+1".into()),
            Cell::Text("-5 degrees".into()),
            Cell::Decimal("1234.50".into()),
            Cell::Date(NaiveDate::from_ymd_opt(2025, 3, 1).expect("date")),
            Cell::Integer(42),
            Cell::Text("say \"hi\", twice".into()),
            Cell::Empty,
        ]];
        let headers = h(&["a", "b", "c", "d", "e", "f", "g"]);
        let bytes = write_csv(&headers, &rows);
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(
            text.contains("'=1+1") && text.contains("'-5 degrees"),
            "{text}"
        );
        let t = read_csv(&bytes).expect("read");
        assert_eq!(
            t.rows[0].cells,
            h(&[
                "=1+1",
                "-5 degrees",
                "1234.50",
                "2025-03-01",
                "42",
                "say \"hi\", twice",
                ""
            ])
        );
    }

    #[test]
    fn xlsx_round_trips_typed_cells_and_reads_cached_formula_values() {
        let headers = h(&["name", "cost", "bought", "units", "ratio", "note", "ok"]);
        let rows = vec![
            vec![
                Cell::Text("db-1".into()),
                Cell::Decimal("4800.00".into()),
                Cell::Date(NaiveDate::from_ymd_opt(2024, 3, 15).expect("date")),
                Cell::Integer(3),
                Cell::Number(0.25),
                Cell::Text("=HYPERLINK(\"x\")".into()),
                Cell::Bool(true),
            ],
            vec![Cell::Text("sw-1".into())],
        ];
        let bytes = write_xlsx("assets", &headers, &rows).expect("xlsx");
        let t = read_xlsx(&bytes).expect("read");
        assert_eq!(t.sheet.as_deref(), Some("assets"));
        assert_eq!(t.headers, headers);
        assert_eq!(
            t.rows[0].cells,
            h(&[
                "db-1",
                "4800",
                "2024-03-15",
                "3",
                "0.25",
                "=HYPERLINK(\"x\")",
                "true"
            ])
        );
        assert_eq!(t.rows[1].cells, h(&["sw-1", "", "", "", "", "", ""]));
        assert_eq!(
            t.place(&t.rows[1], 3),
            "sheet \"assets\", row 3, column D (units)"
        );

        // A workbook as a spreadsheet program leaves it: a formula with its
        // cached result, an error cell.
        let mut book = rust_xlsxwriter::Workbook::new();
        let ws = book.add_worksheet();
        ws.set_name("Purchases").expect("name");
        ws.write_string(0, 0, "serial").expect("w");
        ws.write_string(0, 1, "purchase_cost").expect("w");
        ws.write_string(1, 0, "S1").expect("w");
        ws.write_formula(
            1,
            1,
            rust_xlsxwriter::Formula::new("=1000+200").set_result("1200"),
        )
        .expect("w");
        let bytes = book.save_to_buffer().expect("save");
        let t = read_xlsx(&bytes).expect("read");
        assert_eq!(t.rows[0].cells, h(&["S1", "1200"]));
        let mut book = rust_xlsxwriter::Workbook::new();
        let ws = book.add_worksheet();
        ws.write_string(0, 0, "serial").expect("w");
        ws.write_formula(
            1,
            0,
            rust_xlsxwriter::Formula::new("=1/0").set_result("#DIV/0!"),
        )
        .expect("w");
        let e = read_xlsx(&book.save_to_buffer().expect("save"))
            .expect_err("error cell")
            .to_string();
        assert!(
            e.contains("sheet \"Sheet1\", row 2, column A (serial)"),
            "{e}"
        );
        let e = read_xlsx(b"PK\x03\x04 not really")
            .expect_err("garbage")
            .to_string();
        assert!(e.contains("not an XLSX workbook"), "{e}");
    }

    #[test]
    fn a_hundred_thousand_rows_each_way() {
        let headers = h(&["serial", "site"]);
        let rows: Vec<Vec<Cell>> = (0..100_000)
            .map(|i| vec![Cell::Text(format!("S{i}")), Cell::Text("FRA1".into())])
            .collect();
        let t = read_csv(&write_csv(&headers, &rows)).expect("csv");
        assert_eq!(t.rows.len(), 100_000);
        assert_eq!(t.rows[99_999].cells[0], "S99999");
        assert_eq!(t.rows[99_999].number, 100_001);
        let t = read_xlsx(&write_xlsx("assets", &headers, &rows).expect("xlsx")).expect("xlsx");
        assert_eq!(t.rows.len(), 100_000);
        assert_eq!(t.rows[99_999].cells[0], "S99999");
    }

    #[test]
    fn columns_are_lettered_like_a_spreadsheet() {
        for (n, want) in [
            (0, "A"),
            (25, "Z"),
            (26, "AA"),
            (51, "AZ"),
            (52, "BA"),
            (701, "ZZ"),
            (702, "AAA"),
        ] {
            assert_eq!(column_letters(n), want);
        }
    }
}
