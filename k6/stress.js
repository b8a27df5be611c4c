// stress: see lib/agora.js for what a user does and what fails the run.
import { buildOptions, profile, session, summary } from './lib/agora.js';

const shape = profile({ name: 'stress', users: 10000, duration: '20m', ramp: '15m', ratePerUser: 0.15, minRps: 1000 });

export const options = buildOptions(shape);

export default function () {
  session(shape);
}

export const handleSummary = summary;
