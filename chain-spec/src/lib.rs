//! # gridchain chain specs
//!
//! Parses and builds the JSON [`ChainSpec`] format documented in this crate's README. `dev` and
//! `local` are built in (and checked in as `dev.json` / `local.json`); anything else is read
//! from a file path.

use gridchain_primitives::{account::balance_string, AccountId, Balance, Pair};
use gridchain_runtime::{
    billing::BillingConfig, capacity::CapacityConfig, reservations::ReservationsConfig,
    tfgrid::PricingPolicy, tfgrid::TfgridConfig, validators::StakingConfig, GenesisConfig,
    GenesisFarm, GridGenesis,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One GRID in units.
pub const UNIT: Balance = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChainSpec {
    pub name: String,
    pub id: String,
    pub chain_type: ChainType,
    pub boot_nodes: Vec<String>,
    pub block_time_ms: u64,
    pub properties: Properties,
    pub genesis: Genesis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChainType {
    Development,
    Local,
    Live,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Properties {
    pub token_symbol: String,
    pub token_decimals: u8,
    pub address_prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Genesis {
    pub balances: Vec<GenesisBalance>,
    /// Each validator's stake is bonded from its `balances` entry, which must cover it.
    pub validators: Vec<GenesisValidator>,
    /// Epochs, unbonding, set size, minimum bond, block reward (see the README).
    pub staking: StakingConfig,
    /// Grid parameters, pricing policies and farms (see the README).
    pub grid: GridGenesis,
}

/// `["<address>", "<amount>"]`: an account funded at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBalance(pub AccountId, #[serde(with = "balance_string")] pub Balance);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisValidator {
    pub address: AccountId,
    #[serde(with = "balance_string")]
    pub stake: Balance,
}

#[derive(Debug, thiserror::Error)]
pub enum ChainSpecError {
    #[error("cannot read chain spec {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid chain spec {path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("invalid chain spec: {0}")]
    Invalid(String),
}

/// The well-known development accounts.
pub const DEV_ACCOUNTS: [&str; 6] = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"];

/// Grid genesis of the development chains: short periods so a test sees every transition in
/// seconds — capacity proofs every 10 s, reward epochs of 60 s, settlement every 5 blocks, 30 s
/// of grace — one pricing policy and Alice's farm `dev-farm`, which allows the dev node key
/// (//Ferdie).
fn development_grid() -> GridGenesis {
    GridGenesis {
        tfgrid: TfgridConfig {
            capacity_period_ms: 10_000,
            ..TfgridConfig::default()
        },
        reservations: ReservationsConfig {
            settlement_buckets: 5,
            max_per_bucket: 1_000,
            // 1 GRID per workload plus a day of the deployment's price is held while it lives;
            // a workload costs at least 0.001 GRID per hour while Ok; 1,000 live reservations
            // per account.
            deposit_per_workload: UNIT,
            deposit_hours: 24,
            min_price_per_workload_hour: UNIT / 1_000,
            max_live_per_owner: 1_000,
        },
        billing: BillingConfig {
            grace_period_ms: 30_000,
            ..BillingConfig::default()
        },
        capacity: CapacityConfig {
            timestamp_tolerance_ms: 30_000,
            reward_per_cu_hour: UNIT / 20,
            reward_per_su_hour: UNIT / 40,
            // Six capacity periods; at most 10 GRID minted per epoch to all farms together.
            reward_epoch_ms: 60_000,
            reward_budget_per_epoch: 10 * UNIT,
        },
        pricing_policies: vec![PricingPolicy {
            id: 1,
            name: "dev".into(),
            cu_per_hour: UNIT / 10,
            su_per_hour: UNIT / 20,
            nu_per_gb: UNIT / 100,
            ipu_per_hour: UNIT / 50,
        }],
        farms: vec![GenesisFarm {
            owner: Pair::dev("Alice").public(),
            twin_name: "alice".into(),
            name: "dev-farm".into(),
            pricing_policy_id: 1,
            // The key `gridnode --dev` gives its agent (3Node 1 of the dev farm).
            allowed_nodes: vec![Pair::dev("Ferdie").public()],
        }],
    }
}

/// Staking of the development chains: 10-block epochs so a set change shows up within
/// seconds, 20 blocks of unbonding, up to 100 validators, a 1,000 GRID minimum bond.
fn development_staking(block_reward: Balance) -> StakingConfig {
    StakingConfig {
        epoch_length: 10,
        unbonding_period: 20,
        max_validators: 100,
        min_bond: 1_000 * UNIT,
        block_reward,
    }
}

fn development_spec(
    name: &str,
    id: &str,
    chain_type: ChainType,
    validators: &[&str],
    block_reward: Balance,
) -> ChainSpec {
    ChainSpec {
        name: name.into(),
        id: id.into(),
        chain_type,
        boot_nodes: vec![],
        block_time_ms: 1_000,
        properties: Properties {
            token_symbol: "GRID".into(),
            token_decimals: 12,
            address_prefix: gridchain_primitives::account::DEFAULT_ADDRESS_PREFIX,
        },
        genesis: Genesis {
            balances: DEV_ACCOUNTS
                .iter()
                .map(|n| GenesisBalance(Pair::dev(n).public(), 1_000_000 * UNIT))
                .collect(),
            validators: validators
                .iter()
                .map(|n| GenesisValidator {
                    address: Pair::dev(n).public(),
                    stake: 100_000 * UNIT,
                })
                .collect(),
            staking: development_staking(block_reward),
            grid: development_grid(),
        },
    }
}

/// One validator (Alice, 100,000 GRID of her 1,000,000 bonded); the six dev accounts funded
/// with 1,000,000 GRID each. No block reward: the issuance stays constant, as the node tests
/// that account for every unit expect.
pub fn dev() -> ChainSpec {
    development_spec("Development", "dev", ChainType::Development, &["Alice"], 0)
}

/// Four validators (Alice, Bob, Charlie, Dave, 100,000 GRID bonded each); the same funded dev
/// accounts; a block reward of 0.1 GRID.
pub fn local() -> ChainSpec {
    development_spec(
        "Local Testnet",
        "local",
        ChainType::Local,
        &["Alice", "Bob", "Charlie", "Dave"],
        UNIT / 10,
    )
}

impl ChainSpec {
    /// `dev`, `local`, or a path to a JSON file.
    pub fn load(chain: &str) -> Result<Self, ChainSpecError> {
        let spec = match chain {
            "dev" => dev(),
            "local" => local(),
            path => Self::from_file(Path::new(path))?,
        };
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_file(path: &Path) -> Result<Self, ChainSpecError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ChainSpecError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ChainSpecError::Parse {
            path: shown,
            source,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("chain specs always serialize") + "\n"
    }

    /// Checks what the JSON schema cannot.
    pub fn validate(&self) -> Result<(), ChainSpecError> {
        if self.properties.address_prefix > 63 {
            return Err(ChainSpecError::Invalid(
                "addressPrefix must be 0..=63".into(),
            ));
        }
        if self.block_time_ms == 0 {
            return Err(ChainSpecError::Invalid(
                "blockTimeMs must be positive".into(),
            ));
        }
        let genesis = &self.genesis;
        if genesis.validators.is_empty() {
            return Err(ChainSpecError::Invalid(
                "genesis needs at least one validator".into(),
            ));
        }
        let staking = &genesis.staking;
        staking.check().map_err(ChainSpecError::Invalid)?;
        if genesis.validators.len() > staking.max_validators as usize {
            return Err(ChainSpecError::Invalid(format!(
                "{} validators but maxValidators is {}",
                genesis.validators.len(),
                staking.max_validators
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for v in &genesis.validators {
            if !seen.insert(v.address) {
                return Err(ChainSpecError::Invalid(format!(
                    "validator {} is listed twice",
                    v.address
                )));
            }
            if v.stake < staking.min_bond {
                return Err(ChainSpecError::Invalid(format!(
                    "validator {} stakes {}, below minBond {}",
                    v.address, v.stake, staking.min_bond
                )));
            }
            let funded: Balance = genesis
                .balances
                .iter()
                .filter(|b| b.0 == v.address)
                .map(|b| b.1)
                .sum();
            if funded < v.stake {
                return Err(ChainSpecError::Invalid(format!(
                    "validator {} stakes {} but its genesis balance is {funded}",
                    v.address, v.stake
                )));
            }
        }
        Ok(())
    }

    pub fn genesis_config(&self) -> GenesisConfig {
        GenesisConfig {
            balances: self.genesis.balances.iter().map(|b| (b.0, b.1)).collect(),
            validators: self
                .genesis
                .validators
                .iter()
                .map(|v| (v.address, v.stake))
                .collect(),
            staking: self.genesis.staking.clone(),
            grid: self.genesis.grid.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_specs_match_the_built_in_ones() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(
            std::fs::read_to_string(root.join("dev.json")).unwrap(),
            dev().to_json()
        );
        assert_eq!(
            std::fs::read_to_string(root.join("local.json")).unwrap(),
            local().to_json()
        );
        assert_eq!(
            ChainSpec::from_file(&root.join("local.json")).unwrap(),
            local()
        );
    }

    #[test]
    fn built_in_specs_build_their_genesis() {
        for spec in [dev(), local()] {
            spec.validate().unwrap();
            let config = spec.genesis_config();
            let changes = gridchain_runtime::build_genesis(&config).unwrap();
            let state: std::collections::BTreeMap<_, _> = changes
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
            let set = gridchain_runtime::validators::validator_set_at(&state, 1);
            assert_eq!(set.len(), spec.genesis.validators.len());
            assert!(set
                .iter()
                .all(|v| v.power == 100_000 && v.account == v.consensus_key));
            assert!(set
                .windows(2)
                .all(|w| w[0].consensus_key < w[1].consensus_key));
        }
        assert_eq!(dev().genesis.staking.block_reward, 0);
        assert_eq!(local().genesis.staking.epoch_length, 10);
    }

    #[test]
    fn bad_staking_is_refused() {
        let alice = Pair::dev("Alice").public();
        let refused = |f: &dyn Fn(&mut ChainSpec)| {
            let mut spec = local();
            f(&mut spec);
            assert!(spec.validate().is_err());
        };
        refused(&|s| s.genesis.staking.epoch_length = 0);
        refused(&|s| s.genesis.staking.max_validators = 3);
        refused(&|s| s.genesis.staking.min_bond = 0);
        refused(&|s| s.genesis.validators[0].stake = UNIT);
        refused(&|s| s.genesis.validators[1].address = alice);
        refused(&|s| s.genesis.validators[0].stake = 2_000_000 * UNIT);
        refused(&|s| s.genesis.balances.retain(|b| b.0 != alice));
    }

    #[test]
    fn bad_specs_are_refused() {
        let mut spec = dev();
        spec.genesis.validators.clear();
        assert!(spec.validate().is_err());
        let dir = std::env::temp_dir().join(format!("spec-test-{}", std::process::id()));
        std::fs::write(&dir, "{\"name\": 1}").unwrap();
        assert!(matches!(
            ChainSpec::load(dir.to_str().unwrap()),
            Err(ChainSpecError::Parse { .. })
        ));
        std::fs::remove_file(&dir).unwrap();
        assert!(matches!(
            ChainSpec::load("/nonexistent/spec.json"),
            Err(ChainSpecError::Read { .. })
        ));
    }
}
