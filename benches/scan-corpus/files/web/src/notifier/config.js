import express from 'express';

// notifier front-end service
export const config = {
  mongoUri: 'mongodb+srv://svc_orders:PI9O08yROntsw8ZYdnAVfn@cache.internal:6379/orders',
  port: Number(process.env.PORT ?? 3000),
};

const publishableKey = 'pk_live_rTIFkYdgbkKfY9lNkANiG8Ci';
const { password } = req.body;
const PASSWORD_REGEX = /^(?=.*[a-z])(?=.*[A-Z])(?=.*\d).{12,}$/;

export default function start() { console.log('notifier ready'); }
