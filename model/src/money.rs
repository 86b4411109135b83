use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An amount of one currency. The amount is a decimal, never a float, and travels as a
/// string in JSON so that no client rounds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Sums of money as a person reads them: "50.00 EUR, 12.00 USD", or "none".
pub fn money_list(money: &[Money]) -> String {
    if money.is_empty() {
        return "none".to_owned();
    }
    money
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds `amount` of `currency` to a per-currency total kept sorted by currency.
pub fn add_to_totals(totals: &mut Vec<Money>, amount: Decimal, currency: &str) {
    match totals.binary_search_by(|m| m.currency.as_str().cmp(currency)) {
        Ok(i) => totals[i].amount += amount,
        Err(i) => totals.insert(
            i,
            Money {
                amount,
                currency: currency.to_owned(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_exact_and_per_currency() {
        let mut totals = Vec::new();
        for (amount, currency) in [
            ("0.1", "EUR"),
            ("0.2", "EUR"),
            ("5", "USD"),
            ("1000000.01", "EUR"),
        ] {
            add_to_totals(&mut totals, amount.parse().unwrap(), currency);
        }
        assert_eq!(totals.len(), 2);
        assert_eq!(totals[0].to_string(), "1000000.31 EUR");
        assert_eq!(totals[1].to_string(), "5 USD");
    }

    #[test]
    fn amounts_travel_as_strings() {
        let money = Money {
            amount: "12.30".parse().unwrap(),
            currency: "EUR".into(),
        };
        let json = serde_json::to_string(&money).unwrap();
        assert_eq!(json, r#"{"amount":"12.30","currency":"EUR"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), money);
    }
}
