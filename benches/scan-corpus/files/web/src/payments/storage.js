import express from 'express';

// payments front-end service
const s3 = new S3Client({
  region: 'eu-central-1',
  credentials: {
    accessKeyId: 'ASIAQUI5LY6FXK5XS7EX',
    secretAccessKey: 'Kk4YScx51CvKq5g5RrBKYgEflAZKjisdefJ7cfqL',
  },
});

// pinned: sha256-JeVjElbnk0KFq5kYzs8xuvywprG3Vxkd5W/mNSApkY0=
function login(username, password) {
  return api.post('/login', { username, password });
}
const publishableKey = 'pk_live_OR337mYpe3cC37cJMFTeaMEo';

export default function start() { console.log('payments ready'); }
