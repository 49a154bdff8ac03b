//! S3 specifics: virtual-host-style addressing, the copy source header, the DeleteObjects body.

use std::net::IpAddr;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::params::percent_decode;
use super::route::CompiledRoute;
use super::table::OperationTable;

/// Optional query members of S3 operations that are also another operation's selecting key
/// (from botocore's S3 model: the only overlap is `partNumber`, which UploadPart requires).
const OPTIONAL_SELECTOR_KEYS: &[(&str, &str)] =
    &[("GetObject", "partNumber"), ("HeadObject", "partNumber")];

/// A query key of the request that some S3 operation requires (a subresource such as `acl`,
/// `versioning`, `uploadId`) but the matched operation neither requires nor takes. S3 may act on
/// it (`DELETE /b?versioning` is not DeleteBucket to S3's eyes), so the request is ambiguous.
pub(crate) fn stray_subresource<'q>(
    table: &OperationTable,
    route: &CompiledRoute,
    query: &'q [(String, String)],
) -> Option<&'q str> {
    let routes = table.routes_signed_as(route.service.signing_name);
    query.iter().map(|(key, _)| key.as_str()).find(|key| {
        let selects = routes.iter().any(|r| r.route.query.iter().any(|(k, _)| k == key));
        selects
            && !route.route.query.iter().any(|(k, _)| k == key)
            && !route.route.query_members.iter().any(|(_, k)| k == key)
            && !OPTIONAL_SELECTOR_KEYS.contains(&(route.operation.name, *key))
    })
}

/// Where an S3 request's bucket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum S3Addressing {
    /// The bucket is the first path segment.
    PathStyle,
    /// The bucket is the leading part of the Host header.
    VirtualHost,
}

/// The bucket named by the Host header, if the request is virtual-host style.
///
/// The host (port removed, lower-cased) is not a bucket host when it is an IP literal, one of
/// `gateway_hosts`, or has a single label. It is `<bucket>.<gateway host>` when it ends with a
/// gateway host, `<bucket>.s3[.-]...` for AWS S3 endpoints, and otherwise `<bucket>.<anything>`
/// with the bucket being the first label.
pub(crate) fn bucket_from_host(host: &str, gateway_hosts: &[String]) -> Option<String> {
    let host = strip_port(host.trim()).trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let mut best: Option<&str> = None;
    for gateway in gateway_hosts {
        let gateway = strip_port(gateway.trim()).trim_end_matches('.');
        if gateway.eq_ignore_ascii_case(&host) {
            return None;
        }
        let suffix_len = gateway.len() + 1;
        if host.len() > suffix_len
            && host.as_bytes()[host.len() - suffix_len] == b'.'
            && host[host.len() - gateway.len()..].eq_ignore_ascii_case(gateway)
        {
            let bucket = &host[..host.len() - suffix_len];
            if best.is_none_or(|b| bucket.len() < b.len()) {
                best = Some(bucket);
            }
        }
    }
    if let Some(bucket) = best {
        return Some(bucket.to_owned());
    }
    if let Some(index) = aws_s3_endpoint_start(&host) {
        return (index > 0).then(|| host[..index - 1].to_owned());
    }
    let (first, rest) = host.split_once('.')?;
    (!first.is_empty() && !rest.is_empty()).then(|| first.to_owned())
}

/// Byte index where an AWS S3 endpoint (`s3.`, `s3-`, `s3-accelerate.`...) begins in `host`,
/// for hosts under `amazonaws.com` or `amazonaws.com.cn`.
fn aws_s3_endpoint_start(host: &str) -> Option<usize> {
    if !(host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")) {
        return None;
    }
    let mut start = 0;
    for label in host.split('.') {
        if label == "s3" || label.starts_with("s3-") {
            return Some(start);
        }
        start += label.len() + 1;
    }
    None
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split_once(']').map_or(host, |(addr, _)| addr);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Whether `name` can be a bucket name: 1 to 255 of `[A-Za-z0-9._-]`, starting with a letter or
/// digit (today's rules are stricter; legacy us-east-1 buckets may have upper case and
/// underscores). Anything else, a `/` above all, would let a request name one bucket to policy
/// and another to S3; a leading dot would let `/../b/k` pose as bucket `..` to policy and be
/// normalized to bucket `b` on the way.
pub(crate) fn is_valid_bucket_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The object a `x-amz-copy-source` header names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CopySource {
    /// `arn:aws:s3:::bucket/key`, or the access-point ARN as sent.
    pub arn: String,
    pub version_id: Option<String>,
}

/// Parses `x-amz-copy-source`: `[/]bucket/key[?versionId=v]`, URL-encoded, or an access-point
/// ARN. `None` when it names no object.
pub(crate) fn parse_copy_source(raw: &str, partition: &str) -> Option<CopySource> {
    let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
    let version_id = super::params::parse_pairs(query, false)
        .into_iter()
        .find(|(k, _)| k == "versionId")
        .map(|(_, v)| v);
    let decoded = percent_decode(path, false);
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    if decoded.starts_with("arn:") {
        return Some(CopySource { arn: decoded.to_owned(), version_id });
    }
    let (bucket, key) = decoded.split_once('/')?;
    if bucket.is_empty() || key.is_empty() {
        return None;
    }
    Some(CopySource { arn: format!("arn:{partition}:s3:::{bucket}/{key}"), version_id })
}

/// One object of a DeleteObjects request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct DeleteEntry {
    pub key: String,
    pub version_id: Option<String>,
}

/// Parses the `<Delete><Object><Key>..</Key><VersionId>..</VersionId></Object>..</Delete>` body.
/// `None` when the body is not well-formed XML or an `<Object>` has no key: the caller then
/// cannot name every object the call deletes.
pub(crate) fn parse_delete_objects(body: &[u8]) -> Option<Vec<DeleteEntry>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = Reader::from_str(text);
    let mut entries = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<(Option<String>, Option<String>)> = None;
    let mut text_buf = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(start) => {
                let name = start.local_name().as_ref().to_vec();
                if name == b"Object" && path.len() == 1 {
                    current = Some((None, None));
                }
                text_buf.clear();
                path.push(name);
            }
            Event::End(_) => {
                let name = path.pop()?;
                if let Some((key, version)) = current.as_mut() {
                    match (path.len(), name.as_slice()) {
                        // A second Key or VersionId in one Object: which one S3 acts on is not
                        // ours to guess.
                        (2, b"Key") if key.is_some() => return None,
                        (2, b"VersionId") if version.is_some() => return None,
                        (2, b"Key") => *key = Some(std::mem::take(&mut text_buf)),
                        (2, b"VersionId") => *version = Some(std::mem::take(&mut text_buf)),
                        (1, b"Object") => {
                            let (key, version_id) = current.take()?;
                            entries.push(DeleteEntry { key: key?, version_id });
                        }
                        _ => {}
                    }
                }
                text_buf.clear();
            }
            Event::Empty(empty) if empty.local_name().as_ref() == b"Object" && path.len() == 1 => {
                return None;
            }
            Event::Text(t) => text_buf.push_str(&t.xml_content().ok()?),
            Event::CData(c) => text_buf.push_str(&c.decode().ok()?),
            Event::GeneralRef(r) => match r.resolve_char_ref().ok()? {
                Some(ch) => text_buf.push(ch),
                None => {
                    let name = r.decode().ok()?;
                    text_buf.push_str(quick_xml::escape::resolve_predefined_entity(&name)?);
                }
            },
            Event::Eof => break,
            _ => {}
        }
    }
    path.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> Vec<String> {
        vec!["chaperone-gateway.team-a.svc".to_owned(), "localhost".to_owned()]
    }

    #[test]
    fn ip_literals_and_gateway_hosts_are_path_style() {
        assert_eq!(bucket_from_host("10.96.0.12:8080", &hosts()), None);
        assert_eq!(bucket_from_host("[fd00::1]:8080", &hosts()), None);
        assert_eq!(bucket_from_host("localhost:8080", &hosts()), None);
        assert_eq!(bucket_from_host("chaperone-gateway.team-a.svc", &hosts()), None);
        assert_eq!(bucket_from_host("s3.us-east-1.amazonaws.com", &hosts()), None);
        assert_eq!(bucket_from_host("s3.amazonaws.com", &hosts()), None);
    }

    #[test]
    fn buckets_come_from_the_leading_labels() {
        assert_eq!(
            bucket_from_host("my.dotted.bucket.chaperone-gateway.team-a.svc:8080", &hosts()),
            Some("my.dotted.bucket".to_owned())
        );
        assert_eq!(bucket_from_host("logs.localhost", &hosts()), Some("logs".to_owned()));
        assert_eq!(
            bucket_from_host("a.b.s3.eu-west-1.amazonaws.com", &hosts()),
            Some("a.b".to_owned())
        );
        assert_eq!(
            bucket_from_host("data.s3-us-west-2.amazonaws.com", &hosts()),
            Some("data".to_owned())
        );
        assert_eq!(bucket_from_host("media.example.test", &hosts()), Some("media".to_owned()));
    }

    #[test]
    fn copy_source_names_bucket_key_and_version() {
        assert_eq!(
            parse_copy_source("/src/dir%2Ffile%20a.txt?versionId=v1", "aws"),
            Some(CopySource {
                arn: "arn:aws:s3:::src/dir/file a.txt".to_owned(),
                version_id: Some("v1".to_owned())
            })
        );
        assert_eq!(parse_copy_source("src", "aws"), None);
    }

    #[test]
    fn delete_objects_body_yields_every_key_with_entities_and_cdata() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>
<Object><Key>a&amp;b.txt</Key></Object>
<Object><Key><![CDATA[c<d]]></Key><VersionId>v2</VersionId></Object>
<Object><Key>e&#x2F;f</Key></Object></Delete>"#;
        let entries = parse_delete_objects(body).unwrap();
        assert_eq!(
            entries,
            vec![
                DeleteEntry { key: "a&b.txt".into(), version_id: None },
                DeleteEntry { key: "c<d".into(), version_id: Some("v2".into()) },
                DeleteEntry { key: "e/f".into(), version_id: None },
            ]
        );
    }

    #[test]
    fn malformed_delete_objects_bodies_name_nothing() {
        assert_eq!(parse_delete_objects(b"<Delete><Object><Key>a</Key>"), None);
        assert_eq!(
            parse_delete_objects(b"<Delete><Object><VersionId>v</VersionId></Object></Delete>"),
            None
        );
        assert_eq!(parse_delete_objects(b"\xff\xfe"), None);
        assert_eq!(
            parse_delete_objects(b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>"),
            None
        );
    }
}
