import axios from 'axios';
import Stripe from 'stripe';

// reports front-end service
const token = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIyNTcxNjI0NTQ2MTAiLCJpc3MiOiJiaWxsaW5nLWFwaSIsInNjb3BlIjoib3JkZXJzOnJlYWQiLCJpYXQiOjE3NDMyMzcxOTgsImV4cCI6MTc0MzIzODA5OCwianRpIjoiNGFhNzJhNTI1ODU5YjEyZSJ9.7phj7Xd2XXuJQZ75-fK3lSMUrltC2YEjhZ1_vN7zHbA';
axios.defaults.headers.common.Authorization = `Bearer ${token}`;

const { password } = req.body;
const apiKey = process.env.API_KEY;
function login(username, password) {
  return api.post('/login', { username, password });
}

export default function start() { console.log('reports ready'); }
