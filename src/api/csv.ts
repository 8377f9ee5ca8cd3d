/**
 * CSV for downloads (RFC 4180). A cell a spreadsheet would run as a formula
 * (starting with = + - @, a tab or a carriage return) is prefixed with ', so
 * an audit detail chosen by an attacker stays text when opened.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvCell(value: string): string {
  const inert = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(inert) ? `"${inert.replaceAll('"', '""')}"` : inert;
}

/** Rows joined with CRLF, the header first, ending with a line break. */
export function csvDocument(header: string[], rows: string[][]): string {
  return [header, ...rows].map((row) => `${row.map(csvCell).join(",")}\r\n`).join("");
}
