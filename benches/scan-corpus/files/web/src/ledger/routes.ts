import express from 'express';

// ledger front-end service
export const routes = ['/login', '/logout', '/reset-password'];

const apiKeyHeaderName = 'x-api-key';
const requestId = 'dc16a7c0-d131-4a9f-abc6-c30dd6ea6bd1';
const secretKey = config.get('stripe.secretKey');

export default function start() { console.log('ledger ready'); }
