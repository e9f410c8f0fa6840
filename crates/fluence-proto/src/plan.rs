//! Query plans a node executes over its encrypted indexes.
//!
//! A plan selects a *superset* of the documents that match the user's
//! filter: the gateway decrypts the candidates and applies the exact filter,
//! so a node can only ever make an answer slower, never wrong, by the plan.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DocId, IndexId, Token};
use crate::limits::*;

/// One end of an ORE range; `ct` is a full Lewi–Wu ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OreBound {
    pub ct: Vec<u8>,
    pub inclusive: bool,
}

impl Encode for OreBound {
    fn encode(&self, writer: &mut Writer) {
        writer.bytes(&self.ct);
        writer.bool(self.inclusive);
    }
}

impl Decode for OreBound {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            ct: reader.bytes(ORE_CIPHERTEXT_LEN_MAX, "ore bound")?,
            inclusive: reader.bool("bound inclusivity")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Every document of the dataset.
    All,
    /// Documents with these ids (an `_id` lookup).
    Ids(Vec<DocId>),
    /// Documents holding any of these tokens in an `eq` or `text` index.
    Tokens {
        index: IndexId,
        any_of: Vec<Token>,
    },
    /// Documents holding a value in `[lower, upper]` in a `range` index;
    /// a missing bound is open.
    Range {
        index: IndexId,
        lower: Option<OreBound>,
        upper: Option<OreBound>,
    },
    And(Vec<Plan>),
    Or(Vec<Plan>),
}

impl Encode for Plan {
    fn encode(&self, writer: &mut Writer) {
        match self {
            Plan::All => writer.u8(1),
            Plan::Ids(ids) => {
                writer.u8(2);
                writer.vec(ids);
            }
            Plan::Tokens { index, any_of } => {
                writer.u8(3);
                index.encode(writer);
                writer.vec(any_of);
            }
            Plan::Range {
                index,
                lower,
                upper,
            } => {
                writer.u8(4);
                index.encode(writer);
                writer.option(lower);
                writer.option(upper);
            }
            Plan::And(children) => {
                writer.u8(5);
                writer.vec(children);
            }
            Plan::Or(children) => {
                writer.u8(6);
                writer.vec(children);
            }
        }
    }
}

impl Plan {
    fn decode_at_depth(reader: &mut Reader<'_>, depth: usize) -> Result<Self, DecodeError> {
        if depth > PLAN_DEPTH_MAX {
            return Err(DecodeError::TooLong {
                what: "plan depth",
                len: depth as u64,
                max: PLAN_DEPTH_MAX as u64,
            });
        }
        let children = |reader: &mut Reader<'_>| {
            reader.vec_with(PLAN_FANOUT_MAX, "plan children", |r| {
                Plan::decode_at_depth(r, depth + 1)
            })
        };
        match reader.u8("plan")? {
            1 => Ok(Plan::All),
            2 => Ok(Plan::Ids(reader.vec(PLAN_FANOUT_MAX, "plan ids")?)),
            3 => Ok(Plan::Tokens {
                index: IndexId::decode(reader)?,
                any_of: reader.vec(PLAN_FANOUT_MAX, "plan tokens")?,
            }),
            4 => Ok(Plan::Range {
                index: IndexId::decode(reader)?,
                lower: reader.option("lower bound")?,
                upper: reader.option("upper bound")?,
            }),
            5 => Ok(Plan::And(children(reader)?)),
            6 => Ok(Plan::Or(children(reader)?)),
            tag => Err(DecodeError::UnknownTag { what: "plan", tag }),
        }
    }
}

impl Decode for Plan {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Plan::decode_at_depth(reader, 1)
    }
}
