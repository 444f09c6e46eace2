//! Repository rules and the git drivers: `.kmseal.toml` text (before the first NUL byte) and
//! a document (after it) never panic the rules parser, `Rule::check`, `git::redacted` or
//! `git::merge_lines`; a document sealed under the fuzz KEK merged with itself comes back
//! clean and opening to the same values.
#![no_main]
use std::sync::{Arc, OnceLock};

use kmseal::{Decryptor, Encryptor, Kek, LocalKek, SecretBytes};
use kmseal_config::git::{Merged, merge, merge_lines, redacted};
use kmseal_config::repo::RepoRules;
use kmseal_config::{Format, Sealer};
use libfuzzer_sys::fuzz_target;

fn kek() -> Arc<dyn Kek> {
    static K: OnceLock<Arc<dyn Kek>> = OnceLock::new();
    K.get_or_init(|| {
        let key: Vec<u8> = (0u8..32).collect();
        Arc::new(LocalKek::from_key_bytes(&SecretBytes::from_slice(&key).unwrap()).unwrap())
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let format = [Format::Yaml, Format::Json, Format::Toml, Format::Dotenv][usize::from(which % 4)];
    let (rules, doc) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let (Ok(rules), Ok(doc)) = (std::str::from_utf8(rules), std::str::from_utf8(doc)) else {
        return;
    };
    if let Ok(set) = RepoRules::parse(rules, "/repo") {
        for rule in set.rules() {
            let _ = rule.check(doc, format);
            let _ = rule.merge_requirements(&[]);
        }
        let _ = set.rule_for_relative(doc);
    }
    let _ = redacted(doc, format);
    let _ = merge_lines(doc, doc, doc, format);
    let dec = Decryptor::new(kek());
    if let Ok(before) = kmseal::blocking::block_on(kmseal_config::decrypt(doc, format, &dec, false)) {
        let sealer = Sealer::new(Encryptor::new(kek()), dec.clone());
        let merged = kmseal::blocking::block_on(merge(doc, doc, doc, format, sealer));
        match merged {
            Ok(Merged::Clean(out)) => {
                let after = kmseal::blocking::block_on(kmseal_config::decrypt(&out, format, &dec, false));
                assert_eq!(after.ok().as_deref(), Some(before.as_str()), "a self-merge changed values");
            }
            other => panic!("a verified document did not merge with itself: {other:?}"),
        }
    }
});
