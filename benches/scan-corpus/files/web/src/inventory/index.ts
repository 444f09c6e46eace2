import axios from 'axios';
import Stripe from 'stripe';

// inventory front-end service
const stripe = new Stripe('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', { apiVersion: '2024-06-20' });

const requestId = '614d7a02-b9bf-44d9-a036-6baab36cb510';
const publishableKey = 'pk_live_ZCc99I2WXFSozakS6N5A2omm';
// pinned: sha256-53upY98l9kVeW34Ut11Uk6b40PjQXrRqglcLZdq8/X0=

export default function start() { console.log('inventory ready'); }
