//! `kmseal inspect`: what a message or a config document holds, without any key.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::Args;
use kmseal::{Header, Limits, escape_untrusted};

use crate::rotate::json_string;
use crate::{Failure, usage};

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// A kmseal message or a sealed config document; `-` or nothing reads stdin.
    input: Option<PathBuf>,
    /// Config document format (default: from the file name).
    #[arg(long)]
    format: Option<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Plaintext bytes and frame count for a body of `body` bytes, if well-formed.
fn plaintext_len(body: u64, frame: u64) -> Option<(u64, u64)> {
    let rest = body.checked_sub(16)?;
    let k = rest / (frame + 16);
    let n = rest % (frame + 16);
    (n < frame).then_some((k * frame + n, k + 1))
}

fn wrapped_json(h: &Header) -> String {
    h.wrapped_keys()
        .iter()
        .map(|w| {
            format!(
                r#"{{"provider":{},"key_id":{},"length":{}}}"#,
                json_string(&w.provider),
                json_string(&w.key_id),
                w.ciphertext.len()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn context_json(h: &Header) -> String {
    let pairs: Vec<String> = h
        .context()
        .iter()
        .map(|(k, v)| format!("{}:{}", json_string(k), json_string(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn context_text(h: &Header) -> String {
    let pairs: Vec<String> = h
        .context()
        .iter()
        .map(|(k, v)| format!("{}={}", escape_untrusted(k), escape_untrusted(v)))
        .collect();
    if pairs.is_empty() {
        "(none)".into()
    } else {
        pairs.join(", ")
    }
}

fn header_text(h: &Header, out: &mut String) {
    out.push_str(&format!(
        "suite:        {}{}\n",
        h.suite(),
        if h.is_signed() {
            " + ed25519 signature"
        } else {
            ""
        }
    ));
    out.push_str(&format!("frame size:   {} bytes\n", h.frame_size()));
    out.push_str(&format!("message id:   {}\n", hex(h.message_id())));
    out.push_str(&format!("context:      {}\n", context_text(h)));
    out.push_str(&format!("wrapped keys: {}\n", h.wrapped_keys().len()));
    for w in h.wrapped_keys() {
        out.push_str(&format!(
            "  {} {} ({} bytes)\n",
            escape_untrusted(&w.provider),
            escape_untrusted(&w.key_id),
            w.ciphertext.len()
        ));
    }
}

pub(crate) fn run(args: InspectArgs) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    match args.input.as_deref() {
        None => {
            io::stdin().read_to_end(&mut bytes)?;
        }
        Some(p) if p == std::path::Path::new("-") => {
            io::stdin().read_to_end(&mut bytes)?;
        }
        Some(p) => {
            // Only the header is needed from a large message: read it, then take the size.
            let mut f = std::fs::File::open(p)
                .map_err(|e| usage(format!("cannot open {}: {e}", p.display())))?;
            let total = f.metadata()?.len();
            let mut magic = [0u8; 6];
            let n = f.read(&mut magic)?;
            if n == 6 && magic == kmseal::format::MAGIC {
                let mut r = io::BufReader::new(io::Read::chain(&magic[..], f));
                let h = Header::read_from(&mut r, &Limits::default())?;
                return print_message(&h, total, args.json);
            }
            bytes.extend_from_slice(&magic[..n]);
            f.read_to_end(&mut bytes)?;
        }
    }
    if bytes.starts_with(&kmseal::format::MAGIC) {
        let (h, _) = Header::parse(&bytes, &Limits::default())?;
        return print_message(&h, bytes.len() as u64, args.json);
    }
    let name = args.input.clone().unwrap_or_default();
    let text = String::from_utf8(bytes).map_err(|_| usage("not a kmseal message or text"))?;
    // A sealed document by its metadata block first (whatever its name), then by its name.
    let format = match &args.format {
        Some(f) => kmseal_config::Format::from_name(f),
        None => kmseal_config::Format::of_sealed(&text)
            .or_else(|| kmseal_config::Format::from_path(&name)),
    }
    .ok_or_else(|| {
        usage(
            "not a kmseal message or sealed config document; for an unsealed config document \
             pass --format yaml|json|toml|env",
        )
    })?;
    let info = kmseal_config::inspect(&text, format)?;
    let mut out = String::new();
    if args.json {
        let time = |t: &Option<std::time::SystemTime>| {
            t.map_or("null".to_owned(), |t| {
                format!("\"{}\"", kmseal::time::rfc3339(t))
            })
        };
        let values: Vec<String> = info
            .values
            .iter()
            .zip(&info.set_at)
            .map(|((p, e), t)| {
                format!(
                    r#"{{"path":{},"encrypted":{e},"set_at":{}}}"#,
                    json_string(&p.to_string()),
                    time(t)
                )
            })
            .collect();
        let rules: Vec<String> = info
            .rules
            .iter()
            .map(|r| json_string(&r.to_string()))
            .collect();
        let previous: Vec<String> = info
            .previous
            .iter()
            .map(|(p, until)| {
                format!(
                    r#"{{"path":{},"until":{}}}"#,
                    json_string(&p.to_string()),
                    time(&Some(*until))
                )
            })
            .collect();
        let list = |v: &[String]| {
            v.iter()
                .map(|p| json_string(p))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push_str(&format!(
            r#"{{"type":"config","sealed":{},"version":{},"encrypt":[{}],"plain":[{}],"values":[{}],"rules":[{}],"previous":[{}]"#,
            info.header.is_some(),
            info.version.map_or("null".to_owned(), |v| v.to_string()),
            list(&info.encrypt),
            list(&info.plain),
            values.join(","),
            rules.join(","),
            previous.join(",")
        ));
        if let Some(h) = &info.header {
            out.push_str(&format!(
                r#","context":{},"wrapped_keys":[{}]"#,
                context_json(h),
                wrapped_json(h)
            ));
        }
        out.push_str("}\n");
    } else {
        match &info.header {
            Some(h) => {
                out.push_str(&format!(
                    "kmseal config document (value-level, version {})\n",
                    info.version.unwrap_or(1)
                ));
                header_text(h, &mut out);
                out.push_str(&format!(
                    "policy:       encrypt {} | plain {}\n",
                    escape_untrusted(&info.encrypt.join(",")),
                    if info.plain.is_empty() {
                        "-".into()
                    } else {
                        escape_untrusted(&info.plain.join(",")).into_owned()
                    }
                ));
            }
            None => out.push_str("config document, not sealed (no kmseal metadata)\n"),
        }
        let enc = info.values.iter().filter(|(_, e)| *e).count();
        out.push_str(&format!(
            "values:       {} ({enc} encrypted)\n",
            info.values.len()
        ));
        for ((p, e), t) in info.values.iter().zip(&info.set_at) {
            let path = p.to_string();
            let set = t.map_or(String::new(), |t| {
                format!("  (set {})", kmseal::time::rfc3339(t))
            });
            out.push_str(&format!(
                "  {} {}{set}\n",
                if *e { "enc  " } else { "plain" },
                escape_untrusted(&path)
            ));
        }
        if !info.rules.is_empty() {
            out.push_str("requirements: (unverified: inspect reads without the key)\n");
            for r in &info.rules {
                out.push_str(&format!("  {}\n", escape_untrusted(&r.to_string())));
            }
        }
        for (p, until) in &info.previous {
            out.push_str(&format!(
                "previous:     {} until {}\n",
                escape_untrusted(&p.to_string()),
                kmseal::time::rfc3339(*until)
            ));
        }
    }
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

fn print_message(h: &Header, total: u64, json: bool) -> Result<(), Failure> {
    let header_len = h.encoded_len() as u64;
    // A signed message ends with a 66-byte signature trailer after its frames.
    let trailer = if h.is_signed() { 66 } else { 0 };
    let body = total.saturating_sub(header_len).saturating_sub(trailer);
    let pt = plaintext_len(body, u64::from(h.frame_size()));
    let mut out = String::new();
    if json {
        out.push_str(&format!(
            r#"{{"type":"message","version":1,"suite":{},"signed":{},"frame_size":{},"message_id":"{}","context":{},"wrapped_keys":[{}],"header_bytes":{header_len},"payload_bytes":{body},"frames":{},"plaintext_bytes":{},"total_bytes":{total}}}"#,
            json_string(&h.suite().to_string()),
            h.is_signed(),
            h.frame_size(),
            hex(h.message_id()),
            context_json(h),
            wrapped_json(h),
            pt.map_or("null".into(), |(_, f)| f.to_string()),
            pt.map_or("null".into(), |(p, _)| p.to_string()),
        ));
        out.push('\n');
    } else {
        out.push_str("kmseal message, format version 1\n");
        header_text(h, &mut out);
        out.push_str(&format!("header:       {header_len} bytes\n"));
        match pt {
            Some((p, f)) => out.push_str(&format!(
                "payload:      {body} bytes in {f} frame(s); plaintext {p} bytes\n"
            )),
            None => out.push_str(&format!(
                "payload:      {body} bytes (not a whole number of frames: truncated?)\n"
            )),
        }
        out.push_str(&format!("total:        {total} bytes\n"));
    }
    io::stdout().lock().write_all(out.as_bytes())?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test patterns
mod tests {
    use super::*;

    #[test]
    fn plaintext_length_inverts_body_len() {
        for frame in [1u64, 7, 4096, 65536] {
            for pt in [0u64, 1, frame - 1, frame, frame + 1, 3 * frame, 10_000] {
                let body = kmseal::format::body_len(pt, frame as u32).unwrap();
                assert_eq!(plaintext_len(body, frame), Some((pt, pt / frame + 1)));
            }
        }
        assert_eq!(plaintext_len(15, 64), None);
        assert_eq!(
            plaintext_len(16 + 64, 64),
            None,
            "a full final frame is malformed"
        );
    }
}
