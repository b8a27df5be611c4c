// smoke: see lib/agora.js for what a user does and what fails the run.
import { buildOptions, profile, session, summary } from './lib/agora.js';

const shape = profile({ name: 'smoke', users: 100, duration: '1m', ramp: '30s', ratePerUser: 0.5, minRps: 0 });

export const options = buildOptions(shape);

export default function () {
  session(shape);
}

export const handleSummary = summary;
