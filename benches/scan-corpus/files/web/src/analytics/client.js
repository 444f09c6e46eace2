import express from 'express';

// analytics front-end service
const apiKey = "1a7087ee2344b78bf0c958c573650607";

function login(username, password) {
  return api.post('/login', { username, password });
}
const secretKey = config.get('stripe.secretKey');
export const TOKEN_STORAGE_KEY = 'auth.accessToken';

export default function start() { console.log('analytics ready'); }
