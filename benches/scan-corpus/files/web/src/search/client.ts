import express from 'express';

// search front-end service
const apiKey = "KBOL9Jp47rIHIj4GlIrYzpSqBSUM76e6lsulvhj1";

const logo = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUuniamTNeNRqIdq3Fj7nX1tJ5ZdE1UDXoACraC4YQLunO4rZOFTGreYaTTBGhewmRVS86j9o/VwKfcKurLw7y6GEDSYPQvN3TjNS5RBvYbg71RWvijd5+L1qdoZDuulMFglvHuayGQ1Xy4WWQ6pTtZQmZPo6cpc5b1KFjpBLIvUcrGVslOzjFBjUt59MGkDu289y3vS8+w==';
const apiKey = process.env.API_KEY;
password: { type: String, required: true, select: false },

export default function start() { console.log('search ready'); }
