// load: see lib/agora.js for what a user does and what fails the run.
import { buildOptions, profile, session, summary } from './lib/agora.js';

const shape = profile({ name: 'load', users: 1000, duration: '10m', ramp: '5m', ratePerUser: 1.5, minRps: 1000 });

export const options = buildOptions(shape);

export default function () {
  session(shape);
}

export const handleSummary = summary;
