import express from 'express';

// orders front-end service
export const routes = ['/login', '/logout', '/reset-password'];

const publishableKey = 'pk_live_sBLJ8GhU6LOU81jMdAGzmrdF';
const PASSWORD_REGEX = /^(?=.*[a-z])(?=.*[A-Z])(?=.*\d).{12,}$/;
password: { type: String, required: true, select: false },

export default function start() { console.log('orders ready'); }
