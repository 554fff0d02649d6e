import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app/App';
import { watchDeviceLoss } from './app/device-loss';
import { AppProvider } from './app/provider';
import { keepSession, restoreSession } from './app/session';
import './index.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root element');

keepSession();
watchDeviceLoss();
void restoreSession();

createRoot(root).render(
  <StrictMode>
    <AppProvider>
      <App />
    </AppProvider>
  </StrictMode>,
);
