mod sheets;
