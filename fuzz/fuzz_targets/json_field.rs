//! `store::json_field` on arbitrary input (first line: the field name; the rest: the secret):
//! never a panic, and a string it returns is the one serde_json finds for that field.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let field = std::str::from_utf8(&data[..split]).unwrap_or_default();
    let json = data.get(split + 1..).unwrap_or_default();
    let Ok(value) = kmseal::store::json_field(json, field) else {
        return;
    };
    let parsed: serde_json::Value = match serde_json::from_slice(json) {
        Ok(v) => v,
        // RFC 8259 numbers have no range; serde_json refuses those beyond f64. Nothing else
        // json_field accepts may fail to parse.
        Err(e) if e.to_string().contains("number out of range") => return,
        Err(e) => panic!("json_field accepted what serde_json refuses: {e}"),
    };
    match &parsed[field] {
        serde_json::Value::String(s) => assert_eq!(s.as_bytes(), value.expose_secret()),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {}
        other => panic!("json_field returned a value for {other:?}"),
    }
});
