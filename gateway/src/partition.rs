//! AWS partitions: the one place the gateway maps a region to its partition (the ARN partition
//! name the classifier writes into resources, the DNS suffix of default endpoints, and whether
//! IAM is the global endpoint signed in us-east-1).

/// An AWS partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// The commercial regions.
    Aws,
    /// The China regions (`cn-*`).
    AwsCn,
    /// AWS GovCloud (US) (`us-gov-*`).
    AwsUsGov,
}

impl Partition {
    /// The partition `region` belongs to.
    pub fn of_region(region: &str) -> Self {
        if region.starts_with("cn-") {
            Partition::AwsCn
        } else if region.starts_with("us-gov-") {
            Partition::AwsUsGov
        } else {
            Partition::Aws
        }
    }

    /// The partition's name in ARNs: `aws`, `aws-cn`, `aws-us-gov`.
    pub fn name(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
        }
    }

    /// The DNS suffix of the partition's endpoints.
    pub fn dns_suffix(self) -> &'static str {
        match self {
            Partition::AwsCn => "amazonaws.com.cn",
            Partition::Aws | Partition::AwsUsGov => "amazonaws.com",
        }
    }

    /// Whether IAM is the single global endpoint `iam.amazonaws.com`, signed in us-east-1 (the
    /// commercial partition); elsewhere IAM has a regional endpoint.
    pub fn has_global_iam(self) -> bool {
        self == Partition::Aws
    }
}

/// Whether `region` is an AWS region name: a two-letter area, one or more lowercase words and a
/// number of one or two digits, joined by `-` (`us-east-1`, `us-gov-west-1`, `cn-north-1`,
/// `ap-southeast-4`). Only such a name goes into an upstream host name: no `.`, `@`, `:`, `#`,
/// `/`, `?`, `%` or uppercase letter passes.
pub fn is_region_name(region: &str) -> bool {
    if region.len() > 32 {
        return false;
    }
    let Some((words, number)) = region.rsplit_once('-') else {
        return false;
    };
    let mut words = words.split('-');
    let area_ok = words.next().is_some_and(|area| area.len() == 2 && is_lowercase_word(area));
    let mut count = 0;
    let words_ok = words.all(|word| {
        count += 1;
        is_lowercase_word(word)
    });
    area_ok
        && words_ok
        && count >= 1
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `service` is an AWS signing name: lowercase letters, digits and `-`, starting with a
/// letter or digit, at most 63 characters (`s3`, `dynamodb`, `execute-api`).
pub fn is_signing_name(service: &str) -> bool {
    (1..=63).contains(&service.len())
        && service.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && service.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_lowercase_word(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_map_to_their_partition() {
        assert_eq!(Partition::of_region("eu-west-1").name(), "aws");
        assert_eq!(Partition::of_region("cn-north-1").name(), "aws-cn");
        assert_eq!(Partition::of_region("us-gov-west-1").name(), "aws-us-gov");
        assert_eq!(Partition::of_region("cn-northwest-1").dns_suffix(), "amazonaws.com.cn");
        assert!(!Partition::of_region("us-gov-east-1").has_global_iam());
    }

    #[test]
    fn region_names_follow_the_grammar() {
        for good in [
            "us-east-1",
            "eu-west-3",
            "ap-southeast-4",
            "us-gov-west-1",
            "cn-north-1",
            "cn-northwest-1",
            "il-central-1",
            "us-isob-east-1",
        ] {
            assert!(is_region_name(good), "{good}");
        }
        for bad in [
            "",
            "us-east-1@evil:1234",
            "us-east-1@evil",
            "x#",
            "a/b",
            "US-EAST-1",
            "us-east-1.evil.example",
            "us-east-1?",
            "us-east-1%2f",
            "us-east-1:443",
            "useast1",
            "us-east-",
            "u-east-1",
            "usa-east-1",
            "us--east-1",
            "us-east-123",
            "us-1",
            "us-east-1 ",
            "us-east-x",
        ] {
            assert!(!is_region_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn signing_names_follow_the_grammar() {
        for good in
            ["s3", "dynamodb", "execute-api", "eks-auth", "awsssoportal", "4s", &"a".repeat(63)]
        {
            assert!(is_signing_name(good), "{good}");
        }
        for bad in [
            "",
            "S3",
            "s3.evil",
            "s3@evil:1",
            "x#",
            "a/b",
            "-s3",
            "s3?",
            "s 3",
            "s3%40",
            &"a".repeat(64),
        ] {
            assert!(!is_signing_name(bad), "{bad:?}");
        }
    }
}
