//! Input readers: JSONL and CSV files turned into [`Row`]s (or [`Malformed`] rows, with
//! their line numbers). No I/O beyond reading the input, so it is testable on its own.

use serde::Serialize;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One cache entry, in the shape `POST /admin/cache/entries` expects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Value>>,
    /// A string (the assistant's answer) or a full chat.completion object. Absent only in
    /// `--through-gateway` mode, where the provider answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
}

/// A good row: its record index (0-based, counting malformed rows too, stable across runs
/// on the same file) and the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub index: u64,
    pub line: u64,
    pub entry: Entry,
}

/// A row that cannot be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Malformed {
    pub index: u64,
    pub line: u64,
    pub reason: String,
}

/// What the reader yields for each record.
pub type Record = Result<Row, Malformed>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Auto,
    Jsonl,
    Csv,
}

impl Format {
    /// `auto`: a `.csv` file is CSV, anything else JSONL.
    pub fn resolve(self, path: &Path) -> Format {
        match self {
            Format::Auto => {
                let ext = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if ext == "csv" {
                    Format::Csv
                } else {
                    Format::Jsonl
                }
            }
            f => f,
        }
    }
}

/// How rows are turned into entries (defaults from the command line, CSV column names).
#[derive(Debug, Clone)]
pub struct ReaderOptions {
    pub default_model: Option<String>,
    pub default_namespace: Option<String>,
    pub default_ttl_secs: Option<u64>,
    /// Admin mode needs a response; `--through-gateway` does not.
    pub require_response: bool,
    pub prompt_col: Option<String>,
    pub response_col: Option<String>,
    pub model_col: Option<String>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            default_model: None,
            default_namespace: None,
            default_ttl_secs: None,
            require_response: true,
            prompt_col: None,
            response_col: None,
            model_col: None,
        }
    }
}

/// A reader over JSONL or CSV input. Iterating yields records in file order; I/O errors
/// (and CSV framing errors that lose sync) end the iteration with `Err` from [`Reader::next_record`].
pub struct Reader {
    inner: Inner,
    opts: ReaderOptions,
    next_index: u64,
}

enum Inner {
    Jsonl {
        src: Box<dyn BufRead>,
        line: u64,
        bytes: u64,
        buf: Vec<u8>,
    },
    Csv {
        rdr: csv::Reader<Box<dyn Read>>,
        prompt: usize,
        response: Option<usize>,
        model: Option<usize>,
        namespace: Option<usize>,
        ttl: Option<usize>,
        params: Option<usize>,
        record: csv::StringRecord,
        bytes: u64,
    },
}

impl Reader {
    pub fn open(path: &Path, format: Format, opts: ReaderOptions) -> anyhow::Result<Reader> {
        let file =
            File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        Reader::from_reader(Box::new(file), format.resolve(path), opts)
    }

    pub fn from_reader(
        src: Box<dyn Read>,
        format: Format,
        opts: ReaderOptions,
    ) -> anyhow::Result<Reader> {
        let inner = match format {
            Format::Jsonl | Format::Auto => Inner::Jsonl {
                src: Box::new(BufReader::with_capacity(256 * 1024, src)),
                line: 0,
                bytes: 0,
                buf: Vec::new(),
            },
            Format::Csv => {
                let mut rdr = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(src);
                let headers = rdr
                    .headers()
                    .map_err(|e| anyhow::anyhow!("cannot read the CSV header row: {e}"))?
                    .clone();
                let find = |name: &str| headers.iter().position(|h| h.trim() == name);
                let required = |flag: &str, name: &str| {
                    find(name).ok_or_else(|| {
                        anyhow::anyhow!(
                            "CSV has no column {name:?} (pass {flag}; columns are: {})",
                            headers.iter().collect::<Vec<_>>().join(", ")
                        )
                    })
                };
                let prompt = required(
                    "--prompt-col",
                    opts.prompt_col.as_deref().unwrap_or("prompt"),
                )?;
                let response = match &opts.response_col {
                    Some(c) => Some(required("--response-col", c)?),
                    None if opts.require_response => Some(required("--response-col", "response")?),
                    None => find("response"),
                };
                let model = match &opts.model_col {
                    Some(c) => Some(required("--model-col", c)?),
                    None => find("model"),
                };
                if model.is_none() && opts.default_model.is_none() {
                    anyhow::bail!("CSV has no model column: pass --model (or --model-col)");
                }
                Inner::Csv {
                    prompt,
                    response,
                    model,
                    namespace: find("namespace"),
                    ttl: find("ttl_secs"),
                    params: find("params"),
                    rdr,
                    record: csv::StringRecord::new(),
                    bytes: 0,
                }
            }
        };
        Ok(Reader {
            inner,
            opts,
            next_index: 0,
        })
    }

    /// Bytes consumed so far (for the progress bar).
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            Inner::Jsonl { bytes, .. } | Inner::Csv { bytes, .. } => *bytes,
        }
    }

    /// The next record, `Ok(None)` at the end, `Err` on an I/O error.
    pub fn next_record(&mut self) -> anyhow::Result<Option<Record>> {
        let index = self.next_index;
        let rec = match &mut self.inner {
            Inner::Jsonl {
                src,
                line,
                bytes,
                buf,
            } => loop {
                buf.clear();
                let n = src.read_until(b'\n', buf)?;
                if n == 0 {
                    return Ok(None);
                }
                *line += 1;
                *bytes += n as u64;
                let text = match std::str::from_utf8(buf) {
                    Ok(t) => t.trim(),
                    Err(_) => {
                        break Err(malformed(index, *line, "not valid UTF-8"));
                    }
                };
                if text.is_empty() {
                    continue; // blank lines are not rows
                }
                break match serde_json::from_str::<Value>(text) {
                    Ok(Value::Object(obj)) => {
                        jsonl_entry(obj, &self.opts).map_err(|r| malformed(index, *line, &r))
                    }
                    Ok(_) => Err(malformed(index, *line, "not a JSON object")),
                    Err(e) => Err(malformed(index, *line, &format!("bad JSON: {e}"))),
                }
                .map(|entry| Row {
                    index,
                    line: *line,
                    entry,
                });
            },
            Inner::Csv {
                rdr,
                record,
                bytes,
                prompt,
                response,
                model,
                namespace,
                ttl,
                params,
            } => {
                let more = match rdr.read_record(record) {
                    Ok(more) => more,
                    Err(e) => {
                        // A UTF-8 error leaves the reader in sync: report the row and go on.
                        let line = e.position().map(|p| p.line()).unwrap_or(0);
                        if let csv::ErrorKind::Utf8 { .. } = e.kind() {
                            *bytes = rdr.position().byte();
                            self.next_index += 1;
                            return Ok(Some(Err(malformed(index, line, &format!("{e}")))));
                        }
                        anyhow::bail!("CSV error at line {line}: {e}");
                    }
                };
                if !more {
                    return Ok(None);
                }
                *bytes = rdr.position().byte();
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let cols = CsvCols {
                    prompt: *prompt,
                    response: *response,
                    model: *model,
                    namespace: *namespace,
                    ttl: *ttl,
                    params: *params,
                };
                csv_entry(record, &cols, &self.opts)
                    .map(|entry| Row { index, line, entry })
                    .map_err(|r| malformed(index, line, &r))
            }
        };
        self.next_index += 1;
        Ok(Some(rec))
    }
}

impl Iterator for Reader {
    type Item = anyhow::Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

fn malformed(index: u64, line: u64, reason: &str) -> Malformed {
    Malformed {
        index,
        line,
        reason: reason.to_string(),
    }
}

fn jsonl_entry(mut obj: Map<String, Value>, opts: &ReaderOptions) -> Result<Entry, String> {
    let prompt = match obj.remove("prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => return Err("empty prompt".into()),
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("\"prompt\" is not a string".into()),
    };
    let messages = match obj.remove("messages") {
        None | Some(Value::Null) => None,
        Some(Value::Array(m)) => {
            check_messages(&m)?;
            Some(m)
        }
        Some(_) => return Err("\"messages\" is not an array".into()),
    };
    match (&prompt, &messages) {
        (None, None) => return Err("missing \"prompt\" or \"messages\"".into()),
        (Some(_), Some(_)) => return Err("both \"prompt\" and \"messages\"".into()),
        _ => {}
    }
    let response = match obj.remove("response") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => return Err("empty response".into()),
        Some(v @ Value::String(_)) => Some(v),
        Some(Value::Object(o)) => {
            if !o.get("choices").is_some_and(Value::is_array) {
                return Err("\"response\" object is not a chat.completion (no choices)".into());
            }
            Some(Value::Object(o))
        }
        Some(_) => return Err("\"response\" is neither a string nor an object".into()),
    };
    if response.is_none() && opts.require_response {
        return Err("missing \"response\"".into());
    }
    let model = match obj.remove("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("\"model\" is not a string".into()),
    }
    .or_else(|| opts.default_model.clone())
    .ok_or("missing \"model\" (and no --model given)")?;
    let namespace = match obj.remove("namespace") {
        None | Some(Value::Null) => opts.default_namespace.clone(),
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("\"namespace\" is not a string".into()),
    };
    let ttl_secs = match obj.remove("ttl_secs") {
        None | Some(Value::Null) => opts.default_ttl_secs,
        Some(v) => Some(
            v.as_u64()
                .ok_or("\"ttl_secs\" is not a non-negative integer")?,
        ),
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err("\"params\" is not an object".into()),
    };
    Ok(Entry {
        prompt,
        messages,
        response,
        model,
        namespace,
        ttl_secs,
        params,
    })
}

fn check_messages(m: &[Value]) -> Result<(), String> {
    if m.is_empty() {
        return Err("empty \"messages\"".into());
    }
    for (i, msg) in m.iter().enumerate() {
        let ok = msg.get("role").is_some_and(Value::is_string) && msg.get("content").is_some();
        if !ok {
            return Err(format!("messages[{i}] has no role/content"));
        }
    }
    Ok(())
}

struct CsvCols {
    prompt: usize,
    response: Option<usize>,
    model: Option<usize>,
    namespace: Option<usize>,
    ttl: Option<usize>,
    params: Option<usize>,
}

fn csv_entry(
    rec: &csv::StringRecord,
    cols: &CsvCols,
    opts: &ReaderOptions,
) -> Result<Entry, String> {
    let get = |i: Option<usize>| i.and_then(|i| rec.get(i)).filter(|s| !s.trim().is_empty());
    let prompt = get(Some(cols.prompt)).ok_or("empty prompt")?.to_string();
    let response = get(cols.response).map(|s| Value::String(s.to_string()));
    if response.is_none() && opts.require_response {
        return Err("empty response".into());
    }
    let model = get(cols.model)
        .map(str::to_string)
        .or_else(|| opts.default_model.clone())
        .ok_or("empty model (and no --model given)")?;
    let namespace = get(cols.namespace)
        .map(str::to_string)
        .or_else(|| opts.default_namespace.clone());
    let ttl_secs = match get(cols.ttl) {
        Some(t) => Some(
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("ttl_secs {t:?} is not a non-negative integer"))?,
        ),
        None => opts.default_ttl_secs,
    };
    let params = match get(cols.params) {
        Some(p) => match serde_json::from_str::<Value>(p) {
            Ok(Value::Object(o)) => Some(o),
            _ => return Err("params is not a JSON object".into()),
        },
        None => None,
    };
    Ok(Entry {
        prompt: Some(prompt),
        messages: None,
        response,
        model,
        namespace,
        ttl_secs,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str, format: Format, opts: ReaderOptions) -> Vec<Record> {
        Reader::from_reader(
            Box::new(std::io::Cursor::new(text.to_string())),
            format,
            opts,
        )
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn with_model() -> ReaderOptions {
        ReaderOptions {
            default_model: Some("m".into()),
            ..Default::default()
        }
    }

    #[test]
    fn jsonl_good_and_malformed_rows_keep_line_numbers() {
        let text = concat!(
            "{\"prompt\":\"hi\",\"response\":\"hello\"}\n",
            "\n",
            "{not json\n",
            "{\"prompt\":\"\",\"response\":\"x\"}\n",
            "{\"prompt\":\"a\"}\n",
            "{\"prompt\":1,\"response\":\"x\"}\n",
            "[1,2]\n",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"response\":{\"choices\":[]},\"model\":\"x/y\",\"ttl_secs\":5,\"params\":{\"temperature\":0},\"namespace\":\"ns\"}\n",
            "{\"prompt\":\"p\",\"response\":\"r\",\"ttl_secs\":-1}",
        );
        let recs = read_all(text, Format::Jsonl, with_model());
        assert_eq!(recs.len(), 8);
        let good: Vec<_> = recs.iter().filter_map(|r| r.as_ref().ok()).collect();
        let bad: Vec<_> = recs.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(
            good.iter().map(|r| (r.index, r.line)).collect::<Vec<_>>(),
            vec![(0, 1), (6, 8)]
        );
        assert_eq!(good[0].entry.model, "m");
        assert_eq!(good[1].entry.model, "x/y");
        assert_eq!(good[1].entry.ttl_secs, Some(5));
        assert_eq!(
            bad.iter().map(|m| m.line).collect::<Vec<_>>(),
            vec![3, 4, 5, 6, 7, 9]
        );
        assert!(bad[0].reason.contains("bad JSON"), "{}", bad[0].reason);
        assert!(bad[1].reason.contains("empty prompt"));
        assert!(bad[2].reason.contains("missing \"response\""));
        assert!(bad[5].reason.contains("ttl_secs"));
    }

    #[test]
    fn jsonl_without_model_is_malformed_unless_defaulted() {
        let recs = read_all(
            "{\"prompt\":\"a\",\"response\":\"b\"}\n",
            Format::Jsonl,
            ReaderOptions::default(),
        );
        assert!(recs[0].as_ref().unwrap_err().reason.contains("model"));
    }

    #[test]
    fn csv_multiline_fields_and_column_mapping() {
        let text = "id,instruction,answer\n1,\"first\nquestion\",\"line one\nline two\"\n2,,missing prompt\n3,third,\"x, \"\"quoted\"\"\"\n";
        let opts = ReaderOptions {
            prompt_col: Some("instruction".into()),
            response_col: Some("answer".into()),
            ..with_model()
        };
        let recs = read_all(text, Format::Csv, opts);
        assert_eq!(recs.len(), 3);
        let r0 = recs[0].as_ref().unwrap();
        assert_eq!(r0.line, 2);
        assert_eq!(r0.entry.prompt.as_deref(), Some("first\nquestion"));
        assert_eq!(
            r0.entry.response,
            Some(Value::String("line one\nline two".into()))
        );
        let bad = recs[1].as_ref().unwrap_err();
        assert_eq!(bad.line, 5);
        let r2 = recs[2].as_ref().unwrap();
        assert_eq!(r2.line, 6);
        assert_eq!(r2.index, 2);
        assert_eq!(
            r2.entry.response,
            Some(Value::String("x, \"quoted\"".into()))
        );
    }

    #[test]
    fn csv_missing_column_is_an_error_up_front() {
        let r = Reader::from_reader(
            Box::new(std::io::Cursor::new("a,b\n1,2\n")),
            Format::Csv,
            with_model(),
        );
        let e = r.err().unwrap().to_string();
        assert!(e.contains("--prompt-col"), "{e}");
    }

    #[test]
    fn format_auto_by_extension() {
        assert_eq!(Format::Auto.resolve(Path::new("x.CSV")), Format::Csv);
        assert_eq!(Format::Auto.resolve(Path::new("x.jsonl")), Format::Jsonl);
        assert_eq!(Format::Csv.resolve(Path::new("x.jsonl")), Format::Csv);
    }
}
