//! The grid commands (`twin`, `farm`, `node`, `reserve`, `reservation`): checked locally first
//! (arguments, keys, deployment files), then run against a node.

use crate::{
    accounts::KeystoreLocation,
    commands::{
        farm::{FarmCommand, FarmRequest},
        node::{NodeCommand, NodeRequest},
        reservation::{ReservationCommand, ReservationRequest, ReserveArgs},
        twin::{TwinCommand, TwinRequest},
    },
    output::{OutputFormat, Progress, Rendered},
    rpc::{Node, NodeClient},
};
use anyhow::Result;

pub enum GridCommand {
    Twin(TwinCommand),
    Farm(FarmCommand),
    Node(NodeCommand),
    Reserve(ReserveArgs),
    Reservation(ReservationCommand),
}

pub enum GridRequest {
    Twin(TwinRequest),
    Farm(FarmRequest),
    Node(NodeRequest),
    Reservation(ReservationRequest),
}

impl GridRequest {
    pub fn prepare(command: GridCommand, keystore: &KeystoreLocation) -> Result<Self> {
        Ok(match command {
            GridCommand::Twin(c) => GridRequest::Twin(TwinRequest::prepare(c, keystore)?),
            GridCommand::Farm(c) => GridRequest::Farm(FarmRequest::prepare(c, keystore)?),
            GridCommand::Node(c) => GridRequest::Node(NodeRequest::prepare(c)),
            GridCommand::Reserve(args) => {
                GridRequest::Reservation(ReservationRequest::prepare_reserve(args, keystore)?)
            }
            GridCommand::Reservation(c) => {
                GridRequest::Reservation(ReservationRequest::prepare(c, keystore)?)
            }
        })
    }

    pub async fn execute<C: NodeClient>(
        self,
        node: &Node<'_, C>,
        format: OutputFormat,
    ) -> Result<Rendered> {
        match self {
            GridRequest::Twin(r) => r.execute(node, Progress::new(format)).await,
            GridRequest::Farm(r) => r.execute(node, Progress::new(format)).await,
            GridRequest::Node(r) => r.execute(node).await,
            GridRequest::Reservation(r) => r.execute(node, format).await,
        }
    }
}
