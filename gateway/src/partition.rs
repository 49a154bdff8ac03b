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
}
