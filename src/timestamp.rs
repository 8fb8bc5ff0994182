//! UTC timestamps: arrow timestamp columns as milliseconds, and milliseconds as
//! ISO 8601 text. A leaf module, so the exports, the roll-ups and the FOCUS
//! validator share it without depending on each other.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};

/// Milliseconds since 1970 as `YYYY-MM-DDTHH:mm:ssZ`.
pub fn iso_from_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// A timestamp column as milliseconds tagged UTC, by arithmetic on the raw
/// values (no time zone database: CUR times are UTC instants).
pub fn to_utc_millis(a: &ArrayRef) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    let DataType::Timestamp(unit, _) = a.data_type() else {
        return Err(arrow::error::ArrowError::CastError(format!(
            "{} is not a timestamp",
            a.data_type()
        )));
    };
    let raw = cast(a, &DataType::Int64)?;
    let div: i64 = match unit {
        TimeUnit::Second => -1000,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 1000,
        TimeUnit::Nanosecond => 1_000_000,
    };
    let ms: TimestampMillisecondArray = raw
        .as_primitive::<arrow::datatypes::Int64Type>()
        .iter()
        .map(|v| {
            v.map(|x| {
                if div < 0 {
                    x.saturating_mul(-div)
                } else {
                    x.div_euclid(div)
                }
            })
        })
        .collect();
    Ok(Arc::new(ms.with_timezone("UTC")))
}

/// A timestamp written as text (`2026-10-05T12:00:00Z`, `2026-10-05 12:00:00`,
/// `2026-10-05`), as milliseconds since 1970 UTC; `None` if it is not one.
pub fn parse_millis(text: &str) -> Option<i64> {
    let a: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![text.trim()]));
    let t = cast(&a, &DataType::Timestamp(TimeUnit::Millisecond, None)).ok()?;
    let t = t.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
    (t.len() == 1 && t.is_valid(0)).then(|| t.value(0))
}
