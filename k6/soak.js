// soak: see lib/agora.js for what a user does and what fails the run.
import { buildOptions, profile, session, summary } from './lib/agora.js';

const shape = profile({ name: 'soak', users: 1000, duration: '1h', ramp: '5m', ratePerUser: 0.5, minRps: 0 });

export const options = buildOptions(shape);

export default function () {
  session(shape);
}

export const handleSummary = summary;
