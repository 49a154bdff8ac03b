//! A request's parameters, wherever the protocol put them: URI labels, query string, form body,
//! JSON body. Resource and IAM-action rules read members by their model names through `Params`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Percent-decodes `raw`; with `plus_as_space`, `+` decodes to a space (form encoding).
/// Invalid escapes are kept literally and invalid UTF-8 is replaced, never an error: the result
/// is only used to name things, and the raw request is what gets forwarded.
pub(crate) fn percent_decode(raw: &str, plus_as_space: bool) -> Cow<'_, str> {
    if !raw.bytes().any(|b| b == b'%' || (plus_as_space && b == b'+')) {
        return Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `key=value&key2` into decoded pairs (a key without `=` has an empty value).
pub(crate) fn parse_pairs(raw: &str, plus_as_space: bool) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (
                percent_decode(k, plus_as_space).into_owned(),
                percent_decode(v, plus_as_space).into_owned(),
            )
        })
        .collect()
}

/// Parses a JSON body, refusing objects that repeat a key: which of two `TableName`s a service
/// acts on is not ours to guess, so such a body names nothing.
pub(crate) fn parse_json_strict(body: &[u8]) -> Option<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = StrictValue.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(value)
}

/// Whether two form parameters share a key (`RoleArn=a&RoleArn=b`). `Action` and `Version` are
/// left out: a repeated `Action` is judged on its own, and `Version` names no resource.
pub(crate) fn has_duplicate_keys(pairs: &[(String, String)]) -> bool {
    let mut keys: Vec<&str> = pairs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !matches!(*k, "Action" | "Version"))
        .collect();
    keys.sort_unstable();
    keys.windows(2).any(|w| w[0] == w[1])
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without repeated object keys")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("repeated key `{key}`")));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// The parameters of one request, by model member name.
#[derive(Debug, Default)]
pub(crate) struct Params<'a> {
    /// URI label bindings (decoded).
    pub labels: Vec<(&'static str, String)>,
    /// Decoded query-string pairs.
    pub query: &'a [(String, String)],
    /// Optional query members of the matched REST route: (member, query key).
    pub query_members: &'static [(&'static str, &'static str)],
    /// The JSON body, when the protocol carries one and it parsed.
    pub json: Option<Value>,
    /// Form-encoded parameters (query and EC2 protocols): body pairs, then query-string pairs.
    pub form: Vec<(String, String)>,
}

impl Params<'_> {
    /// The string value of member `name` (a URI label, a bound query member, a top-level JSON
    /// string, or a form parameter).
    pub fn string(&self, name: &str) -> Option<&str> {
        if let Some((_, v)) = self.labels.iter().find(|(n, _)| *n == name) {
            return Some(v);
        }
        if let Some((_, key)) = self.query_members.iter().find(|(m, _)| *m == name)
            && let Some((_, v)) = self.query.iter().find(|(k, _)| k == key)
        {
            return Some(v);
        }
        if let Some(v) = self.json.as_ref().and_then(|j| j.get(name)).and_then(Value::as_str) {
            return Some(v);
        }
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The values at `path`: dot-separated member names where a `[]` suffix walks a list
    /// (`Targets[].RoleArn`, `Names[]`, `IamInstanceProfile.Arn`). Looks in the JSON body and in
    /// form parameters (query lists as `Name.member.N`, EC2 lists as `Name.N`).
    pub fn values(&self, path: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let steps: Vec<&str> = path.split('.').collect();
        if let Some(json) = &self.json {
            collect_json(json, &steps, &mut out);
        }
        for (key, value) in &self.form {
            if form_key_matches(key, &steps) {
                out.push(value.as_str());
            }
        }
        if out.is_empty()
            && steps.len() == 1
            && !path.ends_with("[]")
            && let Some(v) = self.string(path)
        {
            out.push(v);
        }
        out
    }

    /// Member names of the JSON object at top-level member `name` (DynamoDB's `RequestItems`).
    pub fn object_keys(&self, name: &str) -> Vec<&str> {
        match self.json.as_ref().and_then(|j| j.get(name)) {
            Some(Value::Object(map)) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

fn collect_json<'v>(value: &'v Value, steps: &[&str], out: &mut Vec<&'v str>) {
    let Some((step, rest)) = steps.split_first() else {
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
        return;
    };
    let (name, is_list) = match step.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (*step, false),
    };
    let Some(next) = value.get(name) else { return };
    if is_list {
        if let Value::Array(items) = next {
            if rest.is_empty() {
                out.extend(items.iter().filter_map(Value::as_str));
            } else {
                for item in items {
                    collect_json(item, rest, out);
                }
            }
        }
    } else {
        collect_json(next, rest, out);
    }
}

/// Whether form key `key` (`Targets.member.1.RoleArn`, `InstanceId.2`) addresses `steps`.
fn form_key_matches(key: &str, steps: &[&str]) -> bool {
    let mut parts = key.split('.').peekable();
    for step in steps {
        let (name, is_list) = match step.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (*step, false),
        };
        if parts.next() != Some(name) {
            return false;
        }
        if is_list {
            if parts.peek() == Some(&"member") {
                parts.next();
            }
            match parts.next() {
                Some(index) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => return false,
            }
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_plus_and_broken_input() {
        assert_eq!(percent_decode("a%2Fb%20c", false), "a/b c");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%E2%82%AC", false), "€");
        assert_eq!(percent_decode("%FF", false), "\u{FFFD}");
    }

    #[test]
    fn form_lists_are_found_in_query_and_ec2_spelling() {
        let params = Params {
            form: parse_pairs(
                "Names.member.1=a&Names.member.2=b&InstanceId.1=i-1&Targets.member.1.RoleArn=r",
                true,
            ),
            ..Params::default()
        };
        assert_eq!(params.values("Names[]"), vec!["a", "b"]);
        assert_eq!(params.values("InstanceId[]"), vec!["i-1"]);
        assert_eq!(params.values("Targets[].RoleArn"), vec!["r"]);
    }

    #[test]
    fn json_with_a_repeated_key_anywhere_names_nothing() {
        assert!(parse_json_strict(br#"{"TableName":"a","Key":{"id":1}}"#).is_some());
        assert!(parse_json_strict(br#"{"TableName":"a","TableName":"b"}"#).is_none());
        assert!(parse_json_strict(br#"{"T":[{"RoleArn":"a","RoleArn":"b"}]}"#).is_none());
        assert!(parse_json_strict(br#"{"a":1} trailing"#).is_none());
    }

    #[test]
    fn repeated_form_keys_are_noticed() {
        assert!(has_duplicate_keys(&parse_pairs("A=1&B=2&A=3", true)));
        assert!(!has_duplicate_keys(&parse_pairs("A=1&B=2", true)));
    }

    #[test]
    fn json_paths_walk_lists_and_objects() {
        let params = Params {
            json: serde_json::from_str(
                r#"{"Targets":[{"RoleArn":"r1"},{"Id":"x"},{"RoleArn":"r2"}],"P":{"Arn":"a"}}"#,
            )
            .ok(),
            ..Params::default()
        };
        assert_eq!(params.values("Targets[].RoleArn"), vec!["r1", "r2"]);
        assert_eq!(params.values("P.Arn"), vec!["a"]);
    }
}
