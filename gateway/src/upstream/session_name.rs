//! Role session names: what CloudTrail shows after `assumed-role/<role>/`.

use sha2::{Digest, Sha256};

const MIN_LEN: usize = 2;
const MAX_LEN: usize = 64;

/// `raw` made into a valid RoleSessionName (`[\w+=,.@-]{2,64}`): other characters become `-`;
/// a name longer than 64 keeps its first 55 characters and gains `-` and 8 hex digits of its
/// hash, so two long names that share a prefix stay distinct; a name shorter than 2 is padded.
pub fn sanitize_session_name(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' })
        .collect();
    if clean.len() > MAX_LEN {
        let digest = chaperone_recording::lower_hex(Sha256::digest(raw.as_bytes()));
        return format!("{}-{}", &clean[..MAX_LEN - 9], &digest[..8]);
    }
    let mut name = clean;
    while name.len() < MIN_LEN {
        name.push('-');
    }
    name
}

/// The role session name of an agent's calls: `<namespace>.<service account>`.
pub fn agent_session_name(namespace: &str, service_account: &str) -> String {
    sanitize_session_name(&format!("{namespace}.{service_account}"))
}

/// The role session name of the gateway's own web identity exchange.
pub fn gateway_session_name(namespace: &str) -> String {
    sanitize_session_name(&format!("chaperone-gateway.{namespace}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        (MIN_LEN..=MAX_LEN).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    }

    #[test]
    fn an_agents_session_name_is_its_namespace_and_service_account() {
        assert_eq!(agent_session_name("agents", "pr-bot"), "agents.pr-bot");
        assert_eq!(gateway_session_name("agents"), "chaperone-gateway.agents");
    }

    #[test]
    fn characters_sts_refuses_become_dashes() {
        assert_eq!(sanitize_session_name("a b/c:d*é"), "a-b-c-d--");
        assert_eq!(sanitize_session_name("ok_+=,.@-"), "ok_+=,.@-");
    }

    #[test]
    fn a_one_character_name_is_padded_to_two() {
        assert_eq!(sanitize_session_name("a"), "a-");
        assert_eq!(sanitize_session_name(""), "--");
    }

    #[test]
    fn long_names_are_cut_to_64_and_stay_distinct() {
        let namespace = "n".repeat(63);
        let a = agent_session_name(&namespace, "agent-one-with-a-long-name");
        let b = agent_session_name(&namespace, "agent-two-with-a-long-name");
        assert_eq!(a.len(), 64);
        assert!(valid(&a) && valid(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(a.starts_with(&namespace[..55]), "{a}");
    }

    proptest::proptest! {
        #[test]
        fn every_name_becomes_a_valid_session_name(raw in ".{0,200}") {
            let name = sanitize_session_name(&raw);
            proptest::prop_assert!(valid(&name), "{:?} -> {:?}", raw, name);
        }
    }
}
