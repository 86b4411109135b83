//! The demo fleet's services: their teams, saga types with their steps, and the faults
//! their sagas and payout items run into.

use std::time::Duration;

/// How long a saga may go without progress before Runboard counts it as stuck.
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Event-sourced transfers that hold money while they run.
    Payments,
    /// Payout sagas and the weekly payout batch.
    Payouts,
    /// Sign-ups and KYC checks: no money, no batches.
    Onboarding,
}

pub(crate) struct ServiceSpec {
    pub(crate) name: &'static str,
    pub(crate) team: &'static str,
    pub(crate) kind: Kind,
    pub(crate) saga_types: &'static [SagaType],
    pub(crate) faults: &'static [Fault],
}

pub(crate) struct SagaType {
    pub(crate) name: &'static str,
    /// In order; a completed saga rests on the last one.
    pub(crate) steps: &'static [&'static str],
}

/// A defect a saga of one type hits at one step, with the error message it leaves.
pub(crate) struct Fault {
    pub(crate) saga_type: usize,
    pub(crate) step: usize,
    pub(crate) message: &'static str,
}

pub(crate) const SERVICES: &[ServiceSpec] = &[PAYMENTS, PAYOUTS, ONBOARDING];

pub(crate) const PAYMENTS: ServiceSpec = ServiceSpec {
    name: "payments",
    team: "payments",
    kind: Kind::Payments,
    saga_types: &[SagaType {
        name: "transfer",
        steps: &["reserve_funds", "post_to_ledger", "settle"],
    }],
    faults: &[
        Fault {
            saga_type: 0,
            step: 0,
            message: "NullPointerException in ReserveFundsStep.apply",
        },
        Fault {
            saga_type: 0,
            step: 1,
            message: "timeout calling ledger-service after 30s",
        },
        Fault {
            saga_type: 0,
            step: 1,
            message: "ledger-service rejected posting: account frozen",
        },
        Fault {
            saga_type: 0,
            step: 2,
            message: "validation failed: IBAN checksum mismatch",
        },
        Fault {
            saga_type: 0,
            step: 2,
            message: "deadlock detected while updating account balance",
        },
    ],
};

pub(crate) const PAYOUTS: ServiceSpec = ServiceSpec {
    name: "payouts",
    team: "treasury",
    kind: Kind::Payouts,
    saga_types: &[
        SagaType {
            name: "payout",
            steps: &[
                "validate_beneficiary",
                "reserve_payout",
                "send_to_provider",
                "confirm",
            ],
        },
        SagaType {
            name: "payout_reversal",
            steps: &["locate_payout", "reverse_at_provider", "credit_back"],
        },
    ],
    faults: &[
        Fault {
            saga_type: 0,
            step: 0,
            message: "validation failed: IBAN checksum mismatch",
        },
        Fault {
            saga_type: 0,
            step: 2,
            message: "timeout calling payout-provider after 30s",
        },
        Fault {
            saga_type: 0,
            step: 2,
            message: "HTTP 503 from payout-provider",
        },
        Fault {
            saga_type: 0,
            step: 3,
            message: "NullPointerException in ProviderResponseMapper.map",
        },
        Fault {
            saga_type: 1,
            step: 1,
            message: "payout-provider rejected reversal: payout already settled",
        },
    ],
};

pub(crate) const ONBOARDING: ServiceSpec = ServiceSpec {
    name: "onboarding",
    team: "growth",
    kind: Kind::Onboarding,
    saga_types: &[
        SagaType {
            name: "signup",
            steps: &[
                "create_account",
                "send_welcome_email",
                "provision_workspace",
            ],
        },
        SagaType {
            name: "kyc_check",
            steps: &["collect_documents", "verify_identity", "approve"],
        },
    ],
    faults: &[
        Fault {
            saga_type: 0,
            step: 1,
            message: "SMTP 550 mailbox unavailable",
        },
        Fault {
            saga_type: 0,
            step: 2,
            message: "NullPointerException in WorkspaceProvisioner.create",
        },
        Fault {
            saga_type: 1,
            step: 0,
            // User input echoed in an error, as real services do: the screens must show it as text.
            message: "validation failed: display name \"<img src=x onerror=alert(1)>\" contains markup",
        },
        Fault {
            saga_type: 1,
            step: 1,
            message: "timeout calling kyc-provider after 30s",
        },
        Fault {
            saga_type: 1,
            step: 2,
            message: "duplicate key value violates unique constraint \"customer_email_key\"",
        },
    ],
};

/// The errors payout items fail with.
pub(crate) const PAYOUT_ITEM_FAULTS: &[&str] = &[
    "beneficiary account closed",
    "validation failed: IBAN checksum mismatch",
    "timeout calling payout-provider after 30s",
];

pub(crate) fn find(name: &str) -> Option<&'static ServiceSpec> {
    SERVICES.iter().find(|spec| spec.name == name)
}

impl ServiceSpec {
    pub(crate) fn saga_type(&self, name: &str) -> Option<&'static SagaType> {
        self.saga_types.iter().find(|t| t.name == name)
    }

    /// The faults a saga of `saga_type` can hit at `step`.
    pub(crate) fn faults_at(&self, saga_type: &str, step: &str) -> Vec<&'static str> {
        self.faults
            .iter()
            .filter(|f| {
                let t = &self.saga_types[f.saga_type];
                t.name == saga_type && t.steps[f.step] == step
            })
            .map(|f| f.message)
            .collect()
    }
}
