//! Reading a few values out of a stored asset record without decoding the
//! rest: a collect that changed one fact of many needs the old value of
//! that fact alone, and decoding a whole document into a tree of values
//! is most of what storing a collect costs. Anything unexpected in the
//! bytes gives `None`; the caller then decodes the record whole.

use serde_json::{Map, Value};

/// The version of an asset record as [`crate::encode`] writes it (msgpack,
/// fields named), and those of its facts named in `keys` that it has.
pub(crate) fn checkpoint_facts(record: &[u8], keys: &[&str]) -> Option<(u64, Map<String, Value>)> {
    let mut r = Reader { b: record, at: 0 };
    let (mut version, mut facts) = (None, None);
    for _ in 0..r.map_len()? {
        match r.str()? {
            "version" => version = Some(r.uint()?),
            "document" => {
                for _ in 0..r.map_len()? {
                    if r.str()? == "facts" {
                        facts = Some(r.entries(keys)?);
                    } else {
                        r.skip()?;
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    Some((version?, facts?))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let end = self.at.checked_add(usize::try_from(n).ok()?)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    /// A big-endian unsigned integer of `n` bytes.
    fn be(&mut self, n: u64) -> Option<u64> {
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    fn map_len(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0x80..=0x8f => Some(u64::from(m & 0x0f)),
            0xde => self.be(2),
            0xdf => self.be(4),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = match self.byte()? {
            m @ 0xa0..=0xbf => u64::from(m & 0x1f),
            0xd9 => self.be(1)?,
            0xda => self.be(2)?,
            0xdb => self.be(4)?,
            _ => return None,
        };
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0x00..=0x7f => Some(u64::from(m)),
            0xcc => self.be(1),
            0xcd => self.be(2),
            0xce => self.be(4),
            0xcf => self.be(8),
            _ => None,
        }
    }

    /// The entries of a map whose keys are in `keys`, decoded; the others
    /// skipped.
    fn entries(&mut self, keys: &[&str]) -> Option<Map<String, Value>> {
        let mut out = Map::new();
        for _ in 0..self.map_len()? {
            let key = self.str()?;
            let start = self.at;
            self.skip()?;
            if keys.contains(&key) {
                let value = rmp_serde::from_slice(&self.b[start..self.at]).ok()?;
                out.insert(key.to_owned(), value);
            }
        }
        Some(out)
    }

    /// Steps over one value, containers included, without recursion: each
    /// container adds its items to those still to step over.
    fn skip(&mut self) -> Option<()> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let (data, items) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
                0x90..=0x9f => (0, u64::from(m & 0x0f)),
                0xa0..=0xbf => (u64::from(m & 0x1f), 0),
                0xc4 | 0xd9 => (self.be(1)?, 0),
                0xc5 | 0xda => (self.be(2)?, 0),
                0xc6 | 0xdb => (self.be(4)?, 0),
                // ext 8/16/32: the length, then a type byte and the data.
                0xc7 => (self.be(1)? + 1, 0),
                0xc8 => (self.be(2)? + 1, 0),
                0xc9 => (self.be(4)? + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc | 0xd0 => (1, 0),
                0xcd | 0xd1 => (2, 0),
                0xce | 0xd2 => (4, 0),
                0xcf | 0xd3 => (8, 0),
                // fixext 1/2/4/8/16: a type byte and the data.
                0xd4 => (2, 0),
                0xd5 => (3, 0),
                0xd6 => (5, 0),
                0xd7 => (9, 0),
                0xd8 => (17, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
                0xc1 => return None,
            };
            self.take(data)?;
            pending = pending.checked_add(items)?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inventory::{AssetRecord, Status};
    use proptest::prelude::*;
    use serde_json::json;

    fn record(facts: Value) -> AssetRecord {
        let doc = inventory::new_document("server", facts, Status::Active, Map::new(), Map::new());
        let (mut rec, _) = AssetRecord::create(Some("web1".into()), doc, json!({"u": 1}), 5);
        rec.version = 300;
        rec
    }

    #[test]
    fn the_named_facts_and_the_version_come_out_as_decoding_gives_them() {
        let facts = json!({"os": "Debian", "cpu": {"cores": 64, "flags": ["a", "b"]},
            "big": "x".repeat(70_000), "n": -3, "f": 1.5, "none": null, "bytes": u64::MAX,
            "custom": {"f00": "value-0-1", "f01": "value-1-1"}});
        let bytes = crate::encode(&record(facts.clone())).expect("encode");
        let (version, got) = checkpoint_facts(&bytes, &["custom", "cpu", "absent"]).expect("read");
        assert_eq!(version, 300);
        assert_eq!(
            Value::Object(got),
            json!({"custom": facts["custom"], "cpu": facts["cpu"]})
        );
        let (_, all) =
            checkpoint_facts(&bytes, &["os", "big", "n", "f", "none", "bytes"]).expect("read");
        assert_eq!(all.len(), 6);
        for (k, v) in all {
            assert_eq!(v, facts[k.as_str()], "{k}");
        }
    }

    #[test]
    fn cut_or_foreign_bytes_give_none() {
        let bytes = crate::encode(&record(json!({"os": "Debian"}))).expect("encode");
        for cut in 0..bytes.len() {
            assert_eq!(checkpoint_facts(&bytes[..cut], &["os"]), None, "{cut}");
        }
        let change = crate::encode(&json!({"version": 3})).expect("encode");
        assert_eq!(checkpoint_facts(&change, &["os"]), None);
        assert_eq!(checkpoint_facts(&[0xc1], &["os"]), None);
    }

    proptest! {
        /// Any bytes: an answer or `None`, never a panic or a hang.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = checkpoint_facts(&bytes, &["os"]);
        }

        /// Every kind of msgpack value is stepped over whole.
        #[test]
        fn skipping_steps_over_exactly_one_value(v in json_value()) {
            let mut bytes = rmp_serde::to_vec(&v).expect("encode");
            let len = bytes.len();
            bytes.push(0x07);
            let mut r = Reader { b: &bytes, at: 0 };
            prop_assert_eq!(r.skip(), Some(()));
            prop_assert_eq!(r.at, len);
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|n| json!(n)),
            ".{0,40}".prop_map(Value::String),
            // Each length that needs a longer header.
            prop::sample::select(vec![31usize, 32, 255, 256, 65_535, 65_536])
                .prop_map(|n| Value::String("s".repeat(n))),
        ];
        leaf.prop_recursive(4, 64, 20, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..20).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,4}", inner, 0..20)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
