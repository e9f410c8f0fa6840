//! Round trips of every message shape, and adversarial input: truncation,
//! garbage, oversized lengths and deep nesting must give typed errors.

use fluence_proto::*;
use proptest::prelude::*;

fn arb_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn arb_doc_id() -> impl Strategy<Value = DocId> {
    any::<[u8; 16]>().prop_map(DocId)
}

fn arb_index_id() -> impl Strategy<Value = IndexId> {
    any::<[u8; 16]>().prop_map(IndexId)
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    let leaf = prop_oneof![
        Just(Plan::All),
        proptest::collection::vec(arb_doc_id(), 0..4).prop_map(Plan::Ids),
        (
            arb_index_id(),
            proptest::collection::vec(any::<[u8; 16]>().prop_map(Token), 0..4)
        )
            .prop_map(|(index, any_of)| Plan::Tokens { index, any_of }),
        (
            arb_index_id(),
            proptest::option::of((arb_bytes(40), any::<bool>())),
            proptest::option::of((arb_bytes(40), any::<bool>()))
        )
            .prop_map(|(index, lower, upper)| Plan::Range {
                index,
                lower: lower.map(|(ct, inclusive)| OreBound { ct, inclusive }),
                upper: upper.map(|(ct, inclusive)| OreBound { ct, inclusive }),
            }),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Plan::And),
            proptest::collection::vec(inner, 0..4).prop_map(Plan::Or),
        ]
    })
}

fn arb_sealed() -> impl Strategy<Value = SealedDoc> {
    (any::<u64>(), arb_bytes(80), arb_bytes(200)).prop_map(|(version, wrapped_key, ciphertext)| {
        SealedDoc {
            version,
            wrapped_key,
            ciphertext,
        }
    })
}

fn arb_op() -> impl Strategy<Value = DocOp> {
    let entry = (
        arb_index_id(),
        prop_oneof![
            proptest::collection::vec(any::<[u8; 16]>().prop_map(Token), 0..4)
                .prop_map(IndexValues::Tokens),
            proptest::collection::vec(arb_bytes(30), 0..3).prop_map(IndexValues::Ore),
        ],
    )
        .prop_map(|(index, values)| IndexEntry { index, values });
    prop_oneof![
        (
            arb_doc_id(),
            prop_oneof![
                Just(Precondition::Absent),
                any::<u64>().prop_map(Precondition::Version)
            ],
            arb_sealed(),
            proptest::collection::vec(entry, 0..3)
        )
            .prop_map(|(doc, expect, sealed, entries)| DocOp::Put {
                doc,
                expect,
                sealed,
                entries
            }),
        (arb_doc_id(), any::<u64>()).prop_map(|(doc, expect_version)| DocOp::Delete {
            doc,
            expect_version
        }),
    ]
}

fn arb_decl() -> impl Strategy<Value = IndexDecl> {
    (
        arb_index_id(),
        prop_oneof![
            Just(IndexKind::Eq),
            Just(IndexKind::Range),
            Just(IndexKind::Text)
        ],
        any::<bool>(),
    )
        .prop_map(|(id, kind, unique)| IndexDecl { id, kind, unique })
}

fn arb_request() -> impl Strategy<Value = Request> {
    let action = prop_oneof![
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            arb_bytes(64),
            proptest::collection::vec(arb_decl(), 0..4),
            proptest::option::of(proptest::collection::vec(
                (any::<[u8; 32]>(), any::<u8>()),
                0..5
            )),
        )
            .prop_map(
                |(owner, name_tag, descriptor, indexes, seats)| Action::Create {
                    owner: PublicKey(owner),
                    name_tag,
                    descriptor,
                    indexes,
                    cluster: seats.map(|seats| fluence_proto::ClusterGenesis {
                        epoch: 0,
                        members: seats
                            .into_iter()
                            .map(|(key, sig)| fluence_proto::Seat {
                                key: PublicKey(key),
                                acceptance: fluence_proto::Signature([sig; 64]),
                            })
                            .collect(),
                    }),
                }
            ),
        (any::<[u8; 32]>(), proptest::collection::vec(arb_op(), 0..4)).prop_map(|(schema, ops)| {
            Action::Batch {
                schema: Hash32(schema),
                ops,
            }
        }),
        (arb_bytes(64), proptest::collection::vec(arb_decl(), 0..4)).prop_map(
            |(descriptor, indexes)| Action::Reindex {
                descriptor,
                indexes
            }
        ),
        Just(Action::Drop),
    ];
    prop_oneof![
        (any::<[u8; 32]>(), any::<u64>(), action, any::<[u8; 32]>()).prop_map(
            |(dataset, seq, action, sig): ([u8; 32], u64, Action, [u8; 32])| {
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(&sig);
                Request::Write(SignedWrite {
                    body: WriteBody {
                        dataset: DatasetId(dataset),
                        seq,
                        action,
                    },
                    signature: Signature(signature),
                })
            }
        ),
        any::<[u8; 32]>().prop_map(|owner| Request::ListDatasets {
            owner: PublicKey(owner)
        }),
        any::<[u8; 32]>().prop_map(|d| Request::DatasetInfo {
            dataset: DatasetId(d)
        }),
        (
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            arb_plan(),
            proptest::option::of(arb_doc_id()),
            any::<u32>()
        )
            .prop_map(|(d, schema, plan, after, page_docs_max)| Request::Find {
                dataset: DatasetId(d),
                schema: Hash32(schema),
                plan,
                after,
                page_docs_max
            }),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (any::<u64>(), any::<[u8; 32]>()).prop_map(|(seq, root)| Response::Written {
            seq,
            state_root: Hash32(root)
        }),
        proptest::collection::vec((any::<[u8; 32]>(), arb_bytes(40)), 0..3).prop_map(|v| {
            Response::Datasets(
                v.into_iter()
                    .map(|(d, descriptor)| DatasetSummary {
                        dataset: DatasetId(d),
                        descriptor,
                    })
                    .collect(),
            )
        }),
        (
            proptest::collection::vec((arb_doc_id(), arb_sealed()), 0..3),
            proptest::option::of(arb_doc_id())
        )
            .prop_map(|(docs, next)| Response::Page {
                docs: docs
                    .into_iter()
                    .map(|(doc, sealed)| DocEntry { doc, sealed })
                    .collect(),
                next
            }),
        prop_oneof![
            ".{0,20}".prop_map(NodeError::BadRequest),
            Just(NodeError::DatasetNotFound),
            Just(NodeError::BadSignature),
            any::<u64>().prop_map(|expected| NodeError::SeqMismatch { expected }),
            (any::<u32>(), proptest::option::of(any::<u64>())).prop_map(
                |(op_index, found_version)| {
                    NodeError::Precondition {
                        op_index,
                        found_version,
                    }
                }
            ),
            Just(NodeError::StaleSchema),
            (any::<u32>(), arb_index_id())
                .prop_map(|(op_index, index)| NodeError::UniqueViolation { op_index, index }),
        ]
        .prop_map(Response::Error),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(request in arb_request()) {
        let bytes = request.to_bytes();
        prop_assert_eq!(Request::from_bytes(&bytes).unwrap(), request);
    }

    #[test]
    fn responses_round_trip(response in arb_response()) {
        let bytes = response.to_bytes();
        prop_assert_eq!(Response::from_bytes(&bytes).unwrap(), response);
    }

    #[test]
    fn every_strict_prefix_is_rejected(request in arb_request()) {
        let bytes = request.to_bytes();
        for cut in 0..bytes.len() {
            prop_assert!(Request::from_bytes(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn garbage_never_panics(bytes in arb_bytes(512)) {
        let _ = Request::from_bytes(&bytes);
        let _ = Response::from_bytes(&bytes);
    }

    #[test]
    fn flipped_bytes_never_panic(request in arb_request(), position in any::<usize>(), flip in 1u8..) {
        let mut bytes = request.to_bytes();
        let at = position % bytes.len();
        bytes[at] ^= flip;
        let _ = Request::from_bytes(&bytes);
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = Request::ListDatasets {
        owner: PublicKey([7; 32]),
    }
    .to_bytes();
    bytes.push(0);
    assert_eq!(
        Request::from_bytes(&bytes),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn other_protocol_versions_are_named() {
    let mut bytes = Request::ListDatasets {
        owner: PublicKey([7; 32]),
    }
    .to_bytes();
    bytes[0] = 9;
    assert_eq!(
        Request::from_bytes(&bytes),
        Err(DecodeError::UnsupportedVersion {
            found: 9,
            supported: PROTOCOL_VERSION
        })
    );
}

#[test]
fn huge_length_prefix_is_refused_before_allocation() {
    // A Find whose plan claims 4 billion ids must fail on the bound, not try
    // to allocate.
    let mut writer = Writer::new();
    writer.u16(PROTOCOL_VERSION);
    writer.u8(4);
    DatasetId([1; 32]).encode(&mut writer);
    Hash32([2; 32]).encode(&mut writer);
    writer.u8(2);
    writer.u32(u32::MAX);
    let err = Request::from_bytes(&writer.into_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLong {
                what: "plan ids",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn plans_nested_too_deep_are_refused() {
    let mut plan = Plan::All;
    for _ in 0..(limits::PLAN_DEPTH_MAX + 1) {
        plan = Plan::And(vec![plan]);
    }
    let bytes = plan.to_bytes();
    assert!(matches!(
        Plan::from_bytes(&bytes),
        Err(DecodeError::TooLong {
            what: "plan depth",
            ..
        })
    ));
    let mut ok = Plan::All;
    for _ in 0..(limits::PLAN_DEPTH_MAX - 1) {
        ok = Plan::Or(vec![ok]);
    }
    assert_eq!(Plan::from_bytes(&ok.to_bytes()).unwrap(), ok);
}

#[test]
fn non_canonical_booleans_are_refused() {
    let bound = OreBound {
        ct: vec![1, 2],
        inclusive: true,
    };
    let mut bytes = bound.to_bytes();
    let last = bytes.len() - 1;
    bytes[last] = 2;
    assert!(OreBound::from_bytes(&bytes).is_err());
}

#[test]
fn long_error_messages_are_cut_at_a_char_boundary() {
    let text = "é".repeat(limits::ERROR_MESSAGE_LEN_MAX);
    let bytes = Response::Error(NodeError::Internal(text)).to_bytes();
    match Response::from_bytes(&bytes).unwrap() {
        Response::Error(NodeError::Internal(cut)) => {
            assert!(cut.len() <= limits::ERROR_MESSAGE_LEN_MAX);
            assert!(cut.chars().all(|c| c == 'é'));
        }
        other => panic!("unexpected {other:?}"),
    }
}
