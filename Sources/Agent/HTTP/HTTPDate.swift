import ASCIIText

/// HTTP dates in the preferred format, IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), as
/// `Last-Modified` and `If-Modified-Since` carry them. The calendar is computed here, in
/// 64-bit integers (the proleptic Gregorian days of Howard Hinnant's algorithms), so no
/// value from the wire or from a file's time reaches a C `tm` or can overflow.
enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    private static let secondsPerDay: Int64 = 86_400
    /// 9999-12-31T23:59:59Z, the last time an IMF-fixdate can write.
    static let lastWritable: Int64 = 253_402_300_799

    /// The IMF-fixdate of Unix time `seconds`. A year outside 0000…9999 (a file's time
    /// can be anything) is written in full; such a date does not parse back.
    static func format(_ seconds: Int64) -> String {
        let (day, second) = floorDivision(seconds, secondsPerDay)
        let (year, month, dayOfMonth) = civil(fromDays: day)
        let weekday = Int(floorDivision(day + 4, 7).remainder) // 1970-01-01 was a Thursday.
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let yearText = (0...999).contains(year) ? String(repeating: "0", count: 4 - "\(year)".count) + "\(year)" : "\(year)"
        return "\(days[weekday]), \(two(dayOfMonth)) \(months[month - 1]) \(yearText) "
            + "\(two(second / 3600)):\(two(second / 60 % 60)):\(two(second % 60)) GMT"
    }

    /// Unix seconds of an IMF-fixdate, or nil for anything else: RFC 9110 (13.1.3) has a
    /// server ignore an If-Modified-Since that is not a valid date. The weekday is not
    /// checked against the date, as Go's `http.ParseTime` does not.
    static func parse(_ text: String) -> Int64? {
        let bytes = Array(text.utf8)
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        guard bytes.count == 29 else { return nil }
        func field(_ start: Int, _ count: Int) -> ArraySlice<UInt8> { bytes[start..<(start + count)] }
        func literal(_ start: Int, _ text: String) -> Bool { field(start, text.utf8.count).elementsEqual(text.utf8) }
        guard days.contains(where: { literal(0, $0) }), literal(3, ", "), literal(7, " "), literal(11, " "),
              literal(16, " "), literal(19, ":"), literal(22, ":"), literal(25, " GMT"),
              let day = ASCII.fixedDecimal(field(5, 2), count: 2),
              let month = months.firstIndex(where: { literal(8, $0) }),
              let year = ASCII.fixedDecimal(field(12, 4), count: 4),
              let hour = ASCII.fixedDecimal(field(17, 2), count: 2),
              let minute = ASCII.fixedDecimal(field(20, 2), count: 2),
              let second = ASCII.fixedDecimal(field(23, 2), count: 2),
              (1...daysIn(month: month + 1, of: Int64(year))).contains(day),
              hour <= 23, minute <= 59, second <= 60 // a leap second reads as the next one
        else { return nil }
        let dayNumber = days(fromYear: Int64(year), month: Int64(month + 1), day: Int64(day))
        let seconds = dayNumber * secondsPerDay + Int64(hour * 3600 + minute * 60 + second)
        // A leap second ending 9999 would read as year 10000, which no IMF-fixdate writes.
        return seconds <= lastWritable ? seconds : nil
    }

    private static func isLeap(_ year: Int64) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    private static func daysIn(month: Int, of year: Int64) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a date (month 1…12).
    private static func days(fromYear year: Int64, month: Int64, day: Int64) -> Int64 {
        let year = month <= 2 ? year - 1 : year
        let era = floorDivision(year, 400).quotient
        let yearOfEra = year - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The date (month 1…12) of a count of days since 1970-01-01. Any `Int64` count of
    /// days a `Int64` of seconds gives (±1.1e14) stays far inside `Int64` here.
    private static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int64) {
        let shifted = days + 719_468
        let era = floorDivision(shifted, 146_097).quotient
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), Int(month), day)
    }

    /// Division rounding down, with a remainder from 0 to `divisor` - 1.
    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let (quotient, remainder) = value.quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? (quotient - 1, remainder + divisor) : (quotient, remainder)
    }
}
