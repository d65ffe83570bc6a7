//! Amounts of GRID as people type and read them.
//!
//! The chain counts in the smallest unit; one GRID is 10^12 of them. People write decimal GRID
//! (`1.5`, `0.000000000001`), or raw units with `--units`.

use gridchain_primitives::Balance;

/// Decimal places of the GRID token.
pub const DECIMALS: u32 = 12;
/// Symbol shown next to formatted amounts.
pub const SYMBOL: &str = "GRID";
/// Smallest units in one GRID.
const UNITS_PER_GRID: Balance = 10u128.pow(DECIMALS);

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount cannot be negative: {0}")]
    Negative(String),
    #[error("amount has more than {DECIMALS} decimal places: {0}")]
    TooManyDecimals(String),
    #[error("amount is not a decimal number: {0}")]
    NotANumber(String),
    #[error("amount is too large: {0}")]
    Overflow(String),
}

/// Parses an amount in GRID (`"1.5"`) or, when `raw_units` is set, in the smallest unit
/// (`"1500000000000"`).
pub fn parse_amount(text: &str, raw_units: bool) -> Result<Balance, AmountError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AmountError::Empty);
    }
    if text.starts_with('-') {
        return Err(AmountError::Negative(text.to_string()));
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) if !raw_units => (whole, fraction),
        _ => (text, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !all_digits(whole)
        || !all_digits(fraction)
        || (text.contains('.') && fraction.is_empty())
    {
        return Err(AmountError::NotANumber(text.to_string()));
    }
    if fraction.len() > DECIMALS as usize {
        return Err(AmountError::TooManyDecimals(text.to_string()));
    }
    let overflow = || AmountError::Overflow(text.to_string());
    let whole: Balance = whole.parse().map_err(|_| overflow())?;
    if raw_units {
        return Ok(whole);
    }
    let fraction_units: Balance = if fraction.is_empty() {
        0
    } else {
        let padded = format!("{fraction:0<width$}", width = DECIMALS as usize);
        padded.parse().map_err(|_| overflow())?
    };
    whole
        .checked_mul(UNITS_PER_GRID)
        .and_then(|units| units.checked_add(fraction_units))
        .ok_or_else(overflow)
}

/// Formats smallest units as decimal GRID without trailing zeros: `1500000000000` → `"1.5"`.
pub fn format_amount(units: Balance) -> String {
    let whole = units / UNITS_PER_GRID;
    let fraction = units % UNITS_PER_GRID;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = DECIMALS as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Formats smallest units with the token symbol: `"1.5 GRID"`.
pub fn format_grid(units: Balance) -> String {
    format!("{} {SYMBOL}", format_amount(units))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_grid() {
        assert_eq!(parse_amount("1", false), Ok(1_000_000_000_000));
        assert_eq!(parse_amount("1.5", false), Ok(1_500_000_000_000));
        assert_eq!(parse_amount("0.000000000001", false), Ok(1));
        assert_eq!(parse_amount("0", false), Ok(0));
        assert_eq!(parse_amount(" 2.25 ", false), Ok(2_250_000_000_000));
    }

    #[test]
    fn parses_raw_units() {
        assert_eq!(parse_amount("1500", true), Ok(1500));
        assert_eq!(
            parse_amount("1.5", true),
            Err(AmountError::NotANumber("1.5".into()))
        );
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(parse_amount("", false), Err(AmountError::Empty));
        assert_eq!(
            parse_amount("-1", false),
            Err(AmountError::Negative("-1".into()))
        );
        assert_eq!(
            parse_amount("0.0000000000001", false),
            Err(AmountError::TooManyDecimals("0.0000000000001".into()))
        );
        for bad in ["abc", "1.", ".5", "1.2.3", "+1", "1e3", "1,5", "0x10"] {
            assert_eq!(
                parse_amount(bad, false),
                Err(AmountError::NotANumber(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_overflow() {
        let max = u128::MAX.to_string();
        assert_eq!(parse_amount(&max, true), Ok(u128::MAX));
        assert_eq!(parse_amount(&max, false), Err(AmountError::Overflow(max)));
        let too_big = format!("{}0", u128::MAX);
        assert_eq!(
            parse_amount(&too_big, true),
            Err(AmountError::Overflow(too_big))
        );
    }

    #[test]
    fn formats_without_trailing_zeros() {
        assert_eq!(format_amount(0), "0");
        assert_eq!(format_amount(1), "0.000000000001");
        assert_eq!(format_amount(1_500_000_000_000), "1.5");
        assert_eq!(format_amount(7_000_000_000_000), "7");
        assert_eq!(format_grid(2_250_000_000_000), "2.25 GRID");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for units in [0, 1, 999, 1_000_000_000_000, 123_456_789_012_345, u128::MAX] {
            assert_eq!(parse_amount(&format_amount(units), false), Ok(units));
        }
    }
}
