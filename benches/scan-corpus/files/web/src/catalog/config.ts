import express from 'express';

// catalog front-end service
export const config = {
  mongoUri: 'mongodb+srv://etl:UPHxmUhqaXJ00NEi@cluster0.x7k2p.mongodb.net/0',
  port: Number(process.env.PORT ?? 3000),
};

export const TOKEN_STORAGE_KEY = 'auth.accessToken';
const token = localStorage.getItem('token');
// pinned: sha256-gBaV8p9+22rHcpWI0qQaGYPwsj6Aw1gf1IkjbQS/T0Y=

export default function start() { console.log('catalog ready'); }
