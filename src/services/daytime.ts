/**
 * daytime (RFC 867): send the current date and time as one human-readable ASCII
 * line and close; anything the peer sends is ignored. The RFC fixes no syntax
 * and suggests `Weekday, Month Day, Year Time-Zone`; tcpkit always answers in
 * UTC, in exactly that shape:
 *
 *     Wednesday, November 25, 2026 12:00:00-UTC\r\n
 *
 * (weekday and month in full English, day without a leading zero, 24-hour time
 * with leading zeros, then `-UTC` and CRLF).
 */
import type { ServiceContext } from './types.js';

const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June',
  'July', 'August', 'September', 'October', 'November', 'December',
];

const two = (n: number) => String(n).padStart(2, '0');

/** The daytime line for `date` (default now), CRLF included. */
export function daytimeLine(date = new Date()): string {
  const time = `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())}`;
  return `${WEEKDAYS[date.getUTCDay()]}, ${MONTHS[date.getUTCMonth()]} ${date.getUTCDate()}, ${date.getUTCFullYear()} ${time}-UTC\r\n`;
}

export default function daytime({ socket }: ServiceContext): void {
  // Input is ignored but read, so a talkative peer cannot stall our close.
  socket.on('data', () => {});
  socket.resume();
  // The RFC's server closes once the line is sent; a peer still sending would otherwise keep the socket open.
  socket.end(daytimeLine(), 'latin1', () => socket.destroy());
}
